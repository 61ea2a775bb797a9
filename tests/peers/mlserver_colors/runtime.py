"""An MLServer custom runtime that classifies a square by its mean colour, like bench/synthetic.write_color_model."""

import io

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse
from PIL import Image

LABELS = ["red", "green", "blue"]

class ColorModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inp = payload.inputs[0]
        if inp.datatype == "BYTES":
            raw = self.decode(inp, default_codec=None)
            imgs = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.float32) / 255 for b in raw]
            x = np.stack(imgs)
        else:
            x = NumpyCodec.decode_input(inp)
        m = x.mean(axis=(1, 2))
        p = np.exp(12 * m) / np.exp(12 * m).sum(1, keepdims=True)
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=[
            NumpyCodec.encode_output("probabilities", p.astype(np.float32)),
            StringCodec.encode_output("labels", [LABELS[i] for i in p.argmax(1)])])
