"""KServe's Python model server (`kserve.Model` + `ModelServer`, v1 and v2 REST) serving one of this
project's model folders through LiteRT. Run in the kserve peer venv:

    python kserve_server.py PORT NAME MODEL_DIR PROJECT_TRAINED_MODELS [bytes|tensor]

v1 (`POST /v1/models/NAME:predict`) takes `{"instances": [{"b64": ...}]}` (bytes) or nested
floats [N,96,96,3] (tensor); v2 takes a BYTES input `image` or an FP32 input `input_1`. It
publishes no labels and no fingerprint, as a stock server would not.
"""

import base64
import json
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class Pokemon(Model):
    def __init__(self, name: str, folder: Path, project: str, mode: str):
        super().__init__(name)
        self.folder, self.mode = folder, mode
        sys.path.insert(0, project)
        from model_server.preprocessing import Preprocessing

        self.spec = Preprocessing.from_dict(json.loads((folder / "config.json").read_text())["preprocessing"])
        self.n_labels = len(json.loads((folder / "config.json").read_text())["labels"])
        self.load()

    def load(self) -> bool:
        self.it = Interpreter(model_path=str(self.folder / "model.tflite"), num_threads=1)
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = self.it.get_output_details()[0]["index"]
        self.ready = True
        return self.ready

    def get_input_types(self):
        if self.mode == "bytes":
            return [{"name": "image", "datatype": "BYTES", "shape": [-1]}]
        return [{"name": "input_1", "datatype": "FP32", "shape": [-1, 96, 96, 3]}]

    def get_output_types(self):
        return [{"name": "scores", "datatype": "FP32", "shape": [-1, self.n_labels]}]

    def _run(self, x: np.ndarray) -> np.ndarray:
        self.it.resize_tensor_input(self.inp, list(x.shape), strict=False)
        self.it.allocate_tensors()
        self.it.set_tensor(self.inp, x.astype(np.float32))
        self.it.invoke()
        return self.it.get_tensor(self.out).copy()

    def _images(self, blobs: list[bytes]) -> np.ndarray:
        from model_server.preprocessing import preprocess_bytes

        return np.stack([preprocess_bytes(b, self.spec) for b in blobs])

    def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, InferRequest):  # v2
            inp = payload.inputs[0]
            if inp.datatype == "BYTES":
                data = inp.data if inp.data is not None else inp.as_numpy().ravel().tolist()
                blobs = [base64.b64decode(d) if isinstance(d, str) else bytes(d) for d in data]
                if (inp.parameters or {}).get("content_type") != "base64" and not isinstance(data[0], str):
                    blobs = [bytes(d) for d in data]
                x = self._images(blobs)
            else:
                x = inp.as_numpy()
            p = self._run(x)
            out = InferOutput(name="scores", shape=list(p.shape), datatype="FP32")
            out.set_data_from_numpy(p.astype(np.float32), binary_data=False)
            return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id or "kserve")
        instances = payload["instances"]  # v1
        if instances and isinstance(instances[0], dict):
            x = self._images([base64.b64decode(i["b64"]) for i in instances])
        else:
            x = np.asarray(instances, dtype=np.float32)
        return {"predictions": self._run(x).tolist()}


if __name__ == "__main__":
    port, name, folder, project = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    mode = sys.argv[5] if len(sys.argv) > 5 else "bytes"
    ModelServer(http_port=port, enable_grpc=False, workers=1).start([Pokemon(name, folder, project, mode)])
