"""An MLServer custom runtime serving one of this project's model folders through LiteRT.

model-settings.json: `parameters.uri` is the model folder; `parameters.extra.input` is `bytes`
(encoded images, preprocessed here with the project's own preprocessing module) or `tensor`
(FP32 [N, 96, 96, 3], already preprocessed); `parameters.extra.project_runtime` is this project's
`trained_models/` folder (for its preprocessing); `parameters.extra.logits` answers log-probabilities
instead of probabilities. It publishes no labels and no fingerprint, as a stock server would not.
"""

import json
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class LiteRTModel(MLModel):
    async def load(self) -> bool:
        folder = Path(self.settings.parameters.uri)
        extra = self.settings.parameters.extra or {}
        sys.path.insert(0, extra["project_runtime"])  # this project's trained_models/, for its preprocessing
        from model_server.preprocessing import Preprocessing

        self.mode = extra.get("input", "bytes")
        self.logits = bool(extra.get("logits"))
        config = json.loads((folder / "config.json").read_text())
        self.spec = Preprocessing.from_dict(config["preprocessing"])
        self.it = Interpreter(model_path=str(folder / "model.tflite"), num_threads=1)
        self.inp = self.it.get_input_details()[0]["index"]
        self.out = self.it.get_output_details()[0]["index"]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inp = payload.inputs[0]
        if self.mode == "bytes":
            from model_server.preprocessing import preprocess_bytes

            raw = self.decode(inp, default_codec=None)
            x = np.stack([preprocess_bytes(b, self.spec) for b in raw]).astype(np.float32)
        else:
            x = NumpyCodec.decode_input(inp).astype(np.float32)
        self.it.resize_tensor_input(self.inp, list(x.shape), strict=False)
        self.it.allocate_tensors()
        self.it.set_tensor(self.inp, x)
        self.it.invoke()
        p = self.it.get_tensor(self.out).copy()
        if self.logits:
            p = np.log(np.clip(p, 1e-12, 1.0)) + 3.0  # logits: softmax gives p back
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output("scores", p.astype(np.float32))])
