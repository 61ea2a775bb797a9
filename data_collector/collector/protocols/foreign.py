"""Models behind other serving stacks: Open Inference Protocol v2 (Triton, KServe, MLServer), TF Serving / KServe v1.

An address names the protocol: `http://host:port` is this project's server,
`http://host:port/v2/models/NAME[/versions/V]` the Open Inference Protocol v2 and
`http://host:port/v1/models/NAME[/versions/V]` TF Serving's REST API or KServe's v1 protocol;
`--protocol` overrides the detection. Every client answers as this project's server does —
`metadata()` gives {name, version, fingerprint, labels, ...}, `predict(images)` gives
{"model": {...}, "predictions": [{label, confidence, scores}]} — so collection, validation and
storage are one code path whatever the server speaks.

Identity: a server that publishes a fingerprint (`parameters.fingerprint`, as this project's
server does) has a *declared* identity. One that publishes none gets a *behavioural* identity:
sha256 of its name, version, labels and its answers on eight fixed synthetic canary images, each
probability rounded to 2 decimals (see `behavioural_fingerprint`).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
from urllib.parse import quote

import numpy as np

from model_server import oip
from model_server.grammar import GrammarError, parse_uint

from ..vocab import INPUT_MODES
from .answers import AnsweringModel, InvalidAnswer, NativeAnswer, NativePrediction, V1Answer, V1Status
from .client import ModelClient, ModelServerError
from .options import ProtocolOptions
from .urls import ModelURL
from .validate import SUM_TOLERANCE, identity

HEADER_LENGTH = oip.HEADER_LENGTH
ROUND_DECIMALS = 2  # canary probabilities enter the behavioural fingerprint at this precision
MAX_SCORE = 1e4  # |logit| at most: beyond it a server is broken or hostile (and softmax would overflow)
FINGERPRINT = re.compile(r"[0-9a-f]{64}")

# ---- behavioural identity ------------------------------------------------------------------
def canary_images() -> list[tuple[str, bytes]]:
    """Eight fixed synthetic PNGs (seeded noise, gradients, flat colours): the same pixels everywhere."""
    from PIL import Image

    rng = np.random.default_rng(20261126)
    arrays = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    ramp = np.linspace(0, 255, 64, dtype=np.float64)
    arrays.append(np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 255 - ramp[None, :]), -1).astype(np.uint8))
    arrays.append(np.stack(np.broadcast_arrays(255 - ramp[:, None], ramp[None, :] * 0 + 128, ramp[:, None]),
                           -1).astype(np.uint8))
    arrays.append(np.full((64, 64, 3), (250, 210, 40), np.uint8))
    arrays.append(np.full((64, 64, 3), (40, 90, 200), np.uint8))
    out = []
    for i, a in enumerate(arrays):
        buf = io.BytesIO()
        Image.fromarray(a, "RGB").save(buf, "PNG")
        out.append((f"canary-{i}.png", buf.getvalue()))
    return out


def behavioural_fingerprint(name: str, version: str, labels: list[str], probs: np.ndarray) -> str:
    """sha256 of the model's name, version, labels and canary answers (probabilities, 2 decimals).

    Stable across restarts and float noise (~1e-6) unless a probability sits within that noise of
    a rounding boundary; changes when any canary probability moves by 0.005 or more.
    """
    answers = [[format(round(float(v), ROUND_DECIMALS), f".{ROUND_DECIMALS}f") for v in row] for row in probs]
    doc = {"identity": "behavioural/1", "name": name, "version": version, "labels": list(labels), "answers": answers}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def are_probabilities(rows: np.ndarray) -> bool:
    return bool(((rows >= 0) & (rows <= 1)).all() and (np.abs(rows.sum(axis=1) - 1) <= SUM_TOLERANCE).all())


# ---- Open Inference Protocol v2 --------------------------------------------------------------
class ForeignClient(ModelClient):
    """A model on another serving stack, answering like this project's server (see the module doc).

    Subclasses read the model's description in `metadata()` (labels, input, output, then
    `_identify`) and run one inference in `_infer` (raw scores [N, labels] and the model version
    the server says answered).
    """

    protocol = ""

    def __init__(self, address: ModelURL, options: ProtocolOptions, **kwargs):
        super().__init__(address, **kwargs)
        self.options = options
        self.path = f"/{self.protocol}/models/{quote(address.model, safe='')}" + (
            f"/versions/{quote(address.version, safe='')}" if address.version else "")
        self.predict_path = self.path + ("/infer" if self.protocol == "v2" else ":predict")
        self.input_mode = "bytes"
        self.spec = None
        self.logits = False
        self.labels: list[str] = []
        self.name = self.version = self.fingerprint = ""

    def _fail(self, reason: str):
        raise ModelServerError(self.url, reason)

    def _labels(self, published) -> list[str]:
        if published is None:
            if not self.options.labels:
                self._fail("publishes no labels: give them in output order with --labels a,b,c or --labels-file FILE")
            return list(self.options.labels)
        if not published:
            raise InvalidAnswer("metadata.parameters.labels", "must be a non-empty list of strings")
        return list(published)

    def _tensor_spec(self, published: dict | None, shape: list[int] | None) -> None:
        """The preprocessing for tensor mode: the server's, else --preprocessing, else the defaults."""
        from model_server.preprocessing import Preprocessing

        spec = published or self.options.preprocessing
        try:
            if spec:
                self.spec = Preprocessing.from_dict(spec)
            else:
                h, w = shape[1:3] if shape and len(shape) == 4 else (96, 96)
                self.spec = Preprocessing(height=h if h > 0 else 96, width=w if w > 0 else 96)
        except (TypeError, ValueError) as e:
            self._fail(f"preprocessing: {e}")

    def _identify(self, name: str, versions: list | None, declared, facts: dict, server: dict | None = None) -> dict:
        """Ask the canaries; fix logits vs probabilities, the version and the identity; check it all."""
        raw, answered_version = self._infer(canary_images())
        self.logits = not are_probabilities(raw)
        probs = _softmax(raw) if self.logits else raw
        version = (self.address.version or answered_version
                   or (str(versions[0]) if isinstance(versions, list) and len(versions) == 1 else None)
                   or "unversioned")
        if isinstance(declared, str) and FINGERPRINT.fullmatch(declared):
            fingerprint, kind = declared, "declared"
        else:
            fingerprint, kind = behavioural_fingerprint(name, str(version), list(self.labels), probs), "behavioural"
        clean = identity(name=name, version=version, fingerprint=fingerprint, labels=list(self.labels), facts={
            "identity": kind, "protocol": self.protocol, "address": self.url, "input_mode": self.input_mode,
            "scores": "logits (softmax applied)" if self.logits else "probabilities", "backend": None,
            **({"preprocessing": self.spec.to_dict()} if self.spec else {}), **facts,
        }, server=server)
        self.name, self.version, self.fingerprint = clean["name"], clean["version"], clean["fingerprint"]
        return clean

    def _preprocess(self, images: list[tuple[str, bytes]]) -> np.ndarray:
        from model_server.preprocessing import ImageError, preprocess_bytes

        arrays = []
        for i, (name, data) in enumerate(images):
            try:
                arrays.append(preprocess_bytes(data, self.spec))
            except ImageError as e:  # answered like a server refusing that image
                raise ModelServerError(self.url, f"image {i} ({name}): {e}", status=400) from None
        return np.stack(arrays).astype(np.float32)

    def _post(self, path: str, body: bytes, headers: dict) -> tuple[bytes, dict]:
        return self._call("POST", path, max_bytes=self.limits.max_response_bytes, data=body, headers=headers)

    def _infer(self, images: list[tuple[str, bytes]]) -> tuple[np.ndarray, str | None]:
        raise NotImplementedError

    def predict(self, images: list[tuple[str, bytes]]) -> NativeAnswer:
        """The answer in this project's shape, for validate.predictions."""
        raw, version = self._infer(images)
        probs = _softmax(raw) if self.logits else raw
        preds = []
        for row in probs:
            best = int(np.argmax(row))
            preds.append(NativePrediction(label=self.labels[best], confidence=_clip(row[best]),
                                          scores={lab: _clip(v) for lab, v in zip(self.labels, row, strict=True)}))
        answered = version if version is not None and not self.address.version else self.version
        return NativeAnswer(model=AnsweringModel(fingerprint=self.fingerprint, version=answered), predictions=preds)


class OIPClient(ForeignClient):
    """One model on an Open Inference Protocol v2 server (KServe v2 / Triton HTTP)."""

    protocol = "v2"

    def __init__(self, address: ModelURL, options: ProtocolOptions, **kwargs):
        super().__init__(address, options, **kwargs)
        self.binary = False
        self.input_name = self.output_name = ""
        self.started: tuple | None = None  # the description the run started with (recheck)
        self.bytes_shape_2d = False

    def metadata(self) -> dict:
        lim = self.limits.max_metadata_bytes
        hint = ": is this an Open Inference Protocol server?"
        server, _, _ = self._call_typed("GET", "/v2", oip.ServerMetadata, "server metadata", max_bytes=lim, hint=hint)
        self.binary = self.options.binary and "binary_tensor_data" in server.extensions
        meta, _, _ = self._call_typed("GET", self.path, oip.ModelMetadata, "metadata", max_bytes=lim, hint=hint)
        params = meta.parameters or oip.ModelParameters()
        try:
            _unique_names(meta.inputs, "metadata.inputs")
            _unique_names(meta.outputs, "metadata.outputs")
            self.started = _description(meta)
            self.labels = self._labels(params.labels)
            self._choose_output(meta.outputs, len(self.labels))
            self._choose_input(meta.inputs, params)
            return self._identify(meta.name or self.address.model, meta.versions, params.fingerprint, {
                "input": self.input_name, "output": self.output_name, "binary_tensors": self.binary},
                server={"platform": meta.platform} if meta.platform else None)
        except InvalidAnswer as e:
            raise ModelServerError(self.url, f"invalid metadata: {e}") from None

    def recheck(self) -> None:
        """The model's description again, after an answer: labels, inputs and outputs (names, order,
        types, shapes) and name must be what the run started with — labels read once would let a
        server that reorders them mid-run have its answers stored under other labels."""
        meta, _, _ = self._call_typed("GET", self.path, oip.ModelMetadata, "metadata",
                                      max_bytes=self.limits.max_metadata_bytes)
        if _description(meta) != self.started:
            raise ModelServerError(self.url, "its metadata (labels, inputs, outputs or name) changed during the run; "
                                             "nothing of the answer was stored: run again to evaluate what it serves "
                                             "now")

    def _choose_output(self, outputs: list[oip.TensorMetadata], n_labels: int) -> None:
        floats = [o for o in outputs if o.datatype in ("FP32", "FP64", "FP16")]
        if self.options.output:
            chosen = [o for o in outputs if o.name == self.options.output]
            if not chosen:
                self._fail(f"has no output {self.options.output!r} (--output); it has "
                           + ", ".join(repr(o.name) for o in outputs))
        else:
            chosen = [o for o in floats if len(o.shape) == 2 and o.shape[-1] in (n_labels, -1)] or floats
            if len(chosen) > 1:
                self._fail("has several float outputs (" + ", ".join(repr(o.name) for o in chosen)
                           + "): pick the scores with --output NAME")
            if not chosen:
                self._fail("has no float output to read scores from")
        out = chosen[0]
        if out.shape and out.shape[-1] not in (-1, n_labels):
            self._fail(f"output {out.name!r} has {out.shape[-1]} scores per image but {n_labels} labels "
                       "are known: check --labels")
        self.output_name = out.name

    def _choose_input(self, inputs: list[oip.TensorMetadata], params: oip.ModelParameters) -> None:
        def fits(t, mode):
            if mode == "bytes":
                return t.datatype == "BYTES" and (len(t.shape) == 1 or t.shape[1:] == [1])
            return t.datatype == "FP32" and len(t.shape) == 4 and t.shape[-1] == 3

        mode = self.options.input_mode
        if mode is None:
            mode = next((m for m in INPUT_MODES if any(fits(t, m) for t in inputs)), None)
            if mode is None:
                self._fail("has no input the collector can feed: a BYTES [N] input of encoded images or an FP32 "
                           "[N,H,W,3] input (inputs: " + ", ".join(f"{t.name!r} {t.datatype!r} {t.shape}"
                                                                    for t in inputs) + "); see --input-mode")
        chosen = [t for t in inputs if fits(t, mode)] or (inputs if len(inputs) == 1 else [])
        if not chosen:
            self._fail(f"--input-mode {mode}: the model has no such input")
        self.input_mode, self.input_name = mode, chosen[0].name
        self.bytes_shape_2d = mode == "bytes" and len(chosen[0].shape) == 2
        if mode == "tensor":
            self._tensor_spec(params.preprocessing, chosen[0].shape)

    def _request_body(self, images: list[tuple[str, bytes]]) -> tuple[bytes, dict, str]:
        """The request in the codec's types (model_server.oip), as JSON or with a binary tail."""
        n = len(images)
        blob = b""
        if self.input_mode == "bytes":
            inp = oip.RequestInput(name=self.input_name, datatype="BYTES", shape=[n, 1] if self.bytes_shape_2d else [n])
            if self.binary:
                blob = oip.encode_bytes([data for _, data in images])
            else:
                inp.parameters = oip.TensorParameters(content_type="base64")
                inp.data = [base64.b64encode(data).decode() for _, data in images]
        else:
            x = self._preprocess(images)
            inp = oip.RequestInput(name=self.input_name, datatype="FP32", shape=list(x.shape))
            if self.binary:
                blob = x.astype("<f4").tobytes()
            else:
                inp.data = x.ravel().tolist()
        out_spec = oip.RequestOutput(name=self.output_name)
        if self.binary:
            inp.parameters = oip.TensorParameters(binary_data_size=len(blob))
            out_spec.parameters = oip.TensorParameters(binary_data=True)
        request_id = secrets.token_hex(8)  # echoed by OIP servers that return an id: checked (_read_scores)
        head = oip.encode(oip.InferenceRequest(inputs=[inp], outputs=[out_spec], id=request_id))
        if not self.binary:
            return head, {"Content-Type": "application/json"}, request_id
        return (head + blob, {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(head))},
                request_id)

    def _infer(self, images: list[tuple[str, bytes]]) -> tuple[np.ndarray, str | None]:
        """Scores [N, labels] as sent by the server (probabilities or logits) and its model_version."""
        body, headers, request_id = self._request_body(images)
        raw, headers = self._post(self.predict_path, body, headers)
        try:
            scores = self._read_scores(raw, headers, len(images), request_id)
        except InvalidAnswer as e:
            raise ModelServerError(self.url, f"invalid inference response: {e}") from None
        if self.started is not None:
            self.recheck()
        return scores

    def _read_scores(self, raw: bytes, headers: dict, n: int, request_id: str | None = None
                     ) -> tuple[np.ndarray, str | None]:
        head_len = {k.lower(): v for k, v in headers.items()}.get(HEADER_LENGTH.lower())
        tail = b""
        if head_len is not None:
            try:
                cut = parse_uint(head_len, HEADER_LENGTH, maximum=len(raw))
            except GrammarError as e:
                raise InvalidAnswer(HEADER_LENGTH, f"does not fit a body of {len(raw)} bytes ({e})") from None
            raw, tail = raw[:cut], raw[cut:]
        try:
            resp = oip.decode(raw, oip.InferenceResponse)
        except oip.msgspec.ValidationError as e:
            raise InvalidAnswer("response", str(e)) from None
        except (oip.msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise InvalidAnswer("response", "is not JSON") from None
        if resp.id is not None and request_id is not None and resp.id != request_id:
            raise InvalidAnswer("id", "is not the id of the request it answers")
        _unique_names(resp.outputs, "outputs")
        offset, found = 0, None
        for o in resp.outputs:  # binary outputs follow the JSON in the order listed
            size = o.parameters.binary_data_size if o.parameters else None
            if size is not None and size > len(tail) - offset:
                raise InvalidAnswer(f"outputs[{o.name!r}].binary_data_size", "does not fit the binary data")
            if o.name == self.output_name:
                found = (o, tail[offset:offset + size] if size is not None else None)
            offset += size or 0
        if found is None:
            raise InvalidAnswer("outputs", f"lack {self.output_name!r}")
        o, blob = found
        k = len(self.labels)
        if o.shape not in ([n, k], [n * k]):
            raise InvalidAnswer(f"outputs[{self.output_name!r}].shape", f"is {o.shape}, expected [{n}, {k}]")
        count = n * k
        dtype = {"FP32": "<f4", "FP64": "<f8", "FP16": "<f2"}.get(o.datatype)
        if dtype is None:
            raise InvalidAnswer(f"outputs[{self.output_name!r}].datatype", f"is {o.datatype[:20]!r}, not a float")
        if blob is not None:
            if len(blob) != count * np.dtype(dtype).itemsize:
                raise InvalidAnswer(f"outputs[{self.output_name!r}]", "binary data does not match its shape")
            values = np.frombuffer(blob, dtype=dtype).astype(np.float64)
        else:
            if o.data is None:
                raise InvalidAnswer(f"outputs[{self.output_name!r}].data", "missing")
            values = _numbers(o.data, f"outputs[{self.output_name!r}].data", count)
        _check_scores(values, f"outputs[{self.output_name!r}]")
        version = _answered_version(resp.model_version)
        return values.reshape(n, k), version


def _unique_names(tensors: list, field: str) -> None:
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidAnswer(field, f"name {dup[:40]!r} more than once: which one is meant is ambiguous")


def _description(meta: oip.ModelMetadata) -> tuple:
    params = meta.parameters or oip.ModelParameters()
    return (meta.name, tuple(params.labels or ()), params.fingerprint,
            tuple((t.name, t.datatype, tuple(t.shape)) for t in meta.inputs),
            tuple((t.name, t.datatype, tuple(t.shape)) for t in meta.outputs))


def _dim(d) -> int | None:
    """One dimension of a TF Serving signature: {"size": "96"} (int64 as a JSON string), -1 unknown."""
    size = d.get("size", -1) if isinstance(d, dict) else None
    if size in (-1, "-1"):
        return -1
    if isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= 1 << 20:
        return size
    try:
        return parse_uint(size, "signature dimension", maximum=1 << 20)
    except GrammarError:
        return None


def _answered_version(v) -> str | None:
    """A model_version an OIP answer names, as text (None when it names none)."""
    if v is None or v == "":
        return None
    return str(v)


def _check_scores(values: np.ndarray, field: str) -> None:
    if not np.isfinite(values).all():
        raise InvalidAnswer(field, "holds NaN or infinity")
    if values.size and np.abs(values).max() > MAX_SCORE:
        raise InvalidAnswer(field, f"holds scores beyond ±{MAX_SCORE:g}")


class V1Client(ForeignClient):
    """One model behind TF Serving's REST API or KServe's v1 protocol (`:predict` with `instances`)."""

    protocol = "v1"
    v1_key: str | None = None  # the named output of dict rows, fixed at the first answer

    def metadata(self) -> dict:
        lim = self.limits.max_metadata_bytes
        status, _, _ = self._call_typed("GET", self.path, V1Status, "model status", max_bytes=lim,
                                        hint=": is this a TF Serving or KServe v1 server?")
        versions = []
        if status.model_version_status is not None:  # TF Serving
            versions = [str(v.version) for v in status.model_version_status
                        if v.state == "AVAILABLE" and v.version is not None]
        elif status.ready is False:  # KServe
            self._fail(f"GET {self.path} says the model is not ready")
        signature = self._signature()
        self.labels = self._labels(None)
        mode = self.options.input_mode
        if mode is None:  # a string input takes encoded images; without a signature, what plain Keras models take
            dtypes = {t.get("dtype") for t in signature.values()} if signature else set()
            mode = "bytes" if "DT_STRING" in dtypes else "tensor"
        self.input_mode = mode
        if mode == "tensor":
            shape = None
            for t in signature.values():
                dims = (t.get("tensor_shape") or {}).get("dim") if isinstance(t, dict) else None
                if isinstance(dims, list) and len(dims) == 4:
                    shape = [_dim(d) for d in dims]
                    shape = None if None in shape else shape
            self._tensor_spec(None, shape)
        try:
            return self._identify(self.address.model, versions, None, {"signature": bool(signature)})
        except InvalidAnswer as e:
            raise ModelServerError(self.url, f"invalid metadata: {e}") from None

    def _v1_key(self, row: dict, i: int, k: int) -> str:
        """The named output holding the scores: --output, else the one list of k values; the same
        key for every row and every answer of the run (never chosen by order)."""
        if self.options.output:
            return self.options.output
        fits = [key for key, v in row.items() if isinstance(v, list) and len(v) == k]
        if len(fits) != 1:
            raise InvalidAnswer(f"predictions[{i}]", f"has {len(fits)} outputs of {k} values "
                                f"({', '.join(repr(x[:40]) for x in fits[:5])}): name the scores with --output")
        if self.v1_key is None:
            self.v1_key = fits[0]
        elif fits[0] != self.v1_key:
            raise InvalidAnswer(f"predictions[{i}]", f"holds its scores under {fits[0][:40]!r}, not "
                                f"{self.v1_key[:40]!r} as before in this run")
        return fits[0]

    def _signature(self) -> dict:
        """TF Serving's serving_default inputs, where the server has a metadata endpoint (KServe v1 has none)."""
        status, _, body = self._request("GET", self.path + "/metadata", max_bytes=self.limits.max_metadata_bytes)
        if status != 200:
            return {}
        try:
            doc = json.loads(body)
            inputs = doc["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
        except (ValueError, UnicodeDecodeError, RecursionError, KeyError, TypeError):
            return {}
        return inputs if isinstance(inputs, dict) else {}

    def _infer(self, images: list[tuple[str, bytes]]) -> tuple[np.ndarray, str | None]:
        if self.input_mode == "bytes":
            instances = [{"b64": base64.b64encode(data).decode()} for _, data in images]
        else:
            instances = self._preprocess(images).tolist()
        raw, _ = self._post(self.predict_path, json.dumps({"instances": instances}).encode(),
                            {"Content-Type": "application/json"})
        try:
            return self._read_predictions(raw, len(images)), None
        except InvalidAnswer as e:
            raise ModelServerError(self.url, f"invalid predict response: {e}") from None

    def _read_predictions(self, raw: bytes, n: int) -> np.ndarray:
        try:
            preds = oip.decode(raw, V1Answer).predictions
        except oip.msgspec.ValidationError as e:
            raise InvalidAnswer("response", str(e)) from None
        except (oip.msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            raise InvalidAnswer("response", "is not JSON") from None
        if len(preds) != n:
            raise InvalidAnswer("predictions", f"must be a list of {n} rows")
        k = len(self.labels)
        rows = []
        for i, row in enumerate(preds):
            if isinstance(row, dict):  # several named outputs: --output, or the one list of k numbers
                row = row.get(self._v1_key(row, i, k))
            rows.append(_numbers(row, f"predictions[{i}]", k))
        out = np.stack(rows)
        _check_scores(out, "predictions")
        return out

def _numbers(data, field: str, count: int) -> np.ndarray:
    """A (nested) JSON list of exactly `count` numbers, flattened; booleans and strings are refused."""
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError, OverflowError, RecursionError):  # ragged nesting
        arr = None
    if arr is None or arr.dtype.kind not in "iuf":
        raise InvalidAnswer(field, "must be numbers")
    values = arr.astype(np.float64).ravel()
    if values.size != count:
        raise InvalidAnswer(field, f"has {values.size} values, not {count}")
    return values


def _clip(v: float) -> float:
    """A probability as stored: float noise just outside [0, 1] is clipped, anything else is kept (and refused)."""
    v = float(v)
    if -1e-6 <= v < 0:
        return 0.0
    if 1 < v <= 1 + 1e-6:
        return 1.0
    return v
