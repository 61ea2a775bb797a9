"""KServe's Python client (`kserve.InferenceRESTClient`, protocol v2) against a server; prints JSON.

    python kserve_probe.py URL FILE.png [FILE.png ...]      (run in the kserve peer venv)
"""

import asyncio
import base64
import json
import sys

import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def _call(coro):
    try:
        return await coro
    except Exception as e:  # reported, not raised: the test compares what each server made of it
        return f"error: {type(e).__name__}: {e}"


def _labels(res) -> list | str:
    return res if isinstance(res, str) else [list(o.data) for o in res.outputs if o.name == "labels"][0]


async def main(url: str, files: list[str]) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=3, timeout=120))
    out = {"live": await _call(client.is_server_live(url)), "ready": await _call(client.is_server_ready(url)),
           "model_ready": await _call(client.is_model_ready(url, "colors"))}
    x = np.zeros((2, 16, 16, 3), np.float32)
    x[0, ..., 1] = 0.9  # green
    x[1, ..., 2] = 0.9  # blue
    fp = InferInput("input", list(x.shape), "FP32")
    fp.set_data_from_numpy(x, binary_data=False)
    res = await _call(client.infer(url, InferRequest(model_name="colors", infer_inputs=[fp], request_id="k1"),
                                   model_name="colors"))
    out["fp32_labels"] = _labels(res)
    images = [base64.b64encode(open(f, "rb").read()).decode() for f in files]
    body = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [len(images)], "data": images,
                        "parameters": {"content_type": "base64"}}]}
    res = await _call(client.infer(url, body, model_name="colors"))
    out["bytes_labels"] = _labels(res)
    await client.close()
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2:]))))
