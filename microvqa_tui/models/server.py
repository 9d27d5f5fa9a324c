"""The LLM client's OpenAI-compatible server backend (llama.cpp's `llama-server`,
`python -m llama_cpp.server`, vLLM, SGLang, Ollama).

The JSON schema goes as `response_format` (`json_schema`; servers that only know
llama-cpp-python's `json_object` + `schema` form get that after their first refusal),
images as base64 `image_url` parts. `in_flight` requests run at once (the client's
`ask_many`), so a batching server (vLLM) fills its batches. Transport errors, 429 and
5xx answers are retried `retries` times with a short back-off; each call has `timeout_s`.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from microvqa_tui.errors import ModelError
from microvqa_tui.models.client import FAILED, JsonResult, LLMClient, LLMRequest, parsed
from microvqa_tui.models.messages import prepare_messages

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def api_base(url: str) -> str:
    """`http://host:port` or `.../v1` -> the OpenAI API root `.../v1`."""
    url = url.strip().rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def _format_refused(response: Any) -> bool:
    """The server rejected the `response_format` form (llama_cpp.server answers 500)."""
    return response.status_code in (400, 422, 500) and "response_format" in response.text


class ServerClient(LLMClient):
    """An OpenAI-compatible chat-completions server behind the LLM client."""

    backend = "server"

    def __init__(
        self,
        base_url: str,
        *,
        model: str = "",
        api_key_env: str = "",
        in_flight: int = 4,
        timeout_s: float = 120.0,
        retries: int = 2,
        response_format: str = "auto",
        vision: bool = False,
    ) -> None:
        import httpx

        super().__init__()
        self.base_url = api_base(base_url)
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout_s,
            limits=httpx.Limits(max_connections=max(1, in_flight)),
        )
        self.model = model
        self.in_flight = max(1, in_flight)
        self.timeout_s = timeout_s
        self.retries = retries
        self.vision = vision
        self.device = f"server {self.base_url}"
        self._format = "json_schema" if response_format == "auto" else response_format
        self._auto_format = response_format == "auto"
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:  # type: ignore[override]
        return self.model or self.served_model()

    # -- the server
    def models(self) -> list[str]:
        """The model ids the server lists (GET /models)."""
        response = self.http.get("/models", timeout=min(self.timeout_s, 10.0))
        response.raise_for_status()
        return [str(m.get("id", "")) for m in response.json().get("data", [])]

    def served_model(self) -> str:
        """The configured model name, else the first one the server lists."""
        with self._lock:
            if not self.model:
                try:
                    names = self.models()
                except Exception as exc:
                    raise ModelError(
                        f"the LLM server at {self.base_url} does not answer: {exc}",
                        hint="start it, or fix MICROVQA_MODELS__SERVER__BASE_URL",
                    ) from exc
                if not names:
                    raise ModelError(f"the LLM server at {self.base_url} lists no model")
                self.model = names[0]
            return self.model

    def probe(self) -> tuple[bool, str]:
        """(answers, what it says): for `doctor` and `models list`; never raises."""
        try:
            names = self.models()
        except Exception as exc:
            return False, f"{self.base_url} does not answer ({type(exc).__name__}: {exc})"
        return True, f"{self.base_url} answers; models: {', '.join(names) or 'none listed'}"

    # -- one call
    def _body(self, request: LLMRequest) -> dict[str, Any]:
        messages, n_images = prepare_messages(request.messages, request.images)
        if n_images and not self.vision:
            raise ModelError(
                f"{self.model_id} is not configured as a vision model",
                hint="set MICROVQA_MODELS__SERVER__VISION=true for a vision model",
            )
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.served_model(),
            "messages": messages,
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
        }
        if s.repeat_penalty is not None:
            body["repeat_penalty"] = s.repeat_penalty
        if request.schema is not None:
            body["response_format"] = self._response_format(dict(request.schema))
        return body

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self._format == "json_object":  # llama-cpp-python's own server
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}

    def _post(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        import httpx

        for attempt in range(self.retries + 1):
            try:
                response = self.http.post("/chat/completions", json=body, timeout=timeout)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            else:
                if _format_refused(response) and self._switch_format(body):
                    continue
                if response.status_code not in _RETRY_STATUS or attempt == self.retries:
                    response.raise_for_status()
                    return response.json()
            time.sleep(min(2.0, 0.25 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _switch_format(self, body: dict[str, Any]) -> bool:
        """With response_format auto, a server refusing `json_schema` gets the `json_object`
        + schema form, from then on (requests already in flight switch as they come back)."""
        sent = body.get("response_format") or {}
        if not self._auto_format or sent.get("type") != "json_schema":
            return False
        self._format = "json_object"
        body["response_format"] = self._response_format(sent["json_schema"]["schema"])
        return True

    def _generate(self, request: LLMRequest) -> JsonResult:
        start = time.perf_counter()
        reply = self._post(self._body(request), float(request.timeout_s or self.timeout_s))
        choice = (reply.get("choices") or [{}])[0]
        raw = str((choice.get("message") or {}).get("content") or "")
        usage = reply.get("usage") or {}
        result = parsed(
            raw,
            request,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=time.perf_counter() - start,
        )
        if not result.ok and choice.get("finish_reason") == "length":
            result.message = (
                f"the output reached max_tokens={request.sampling.max_tokens} before the "
                "JSON was complete [length]"
            )
        elif not raw and not result.ok:
            result.error, result.message = FAILED, "the server sent an empty reply"
        return result

    def close(self) -> None:
        self.http.close()


def status_row(role: str, cfg: Any, *, loaded: bool = False) -> dict[str, Any]:
    """`models list` / `doctor` row of a role the server answers: whether it answers, and
    the models it lists (the row shape of `registry.status`)."""
    with ServerClient(cfg.base_url, api_key_env=cfg.api_key_env, timeout_s=5.0) as probe:
        answers, detail = probe.probe()
    return {
        "role": role,
        "model": cfg.model or "(server default)",
        "present": answers,
        "path": api_base(cfg.base_url),
        "mmproj": "",
        "size_bytes": 0,
        "size": "",
        "device": f"server, {cfg.in_flight} in flight",
        "source": "server",
        "detail": detail,
        "fetch": "" if answers else "start the server, or fix MICROVQA_MODELS__SERVER__BASE_URL",
        "loaded": loaded,
    }


class LocalServer:
    """`python -m llama_cpp.server` serving one GGUF on 127.0.0.1 at a free port (tests,
    benchmarks, a quick local setup). A context manager: started on entry (waits until it
    answers), stopped on exit."""

    def __init__(self, gguf: str, *, n_ctx: int = 2048, n_threads: int = 1, wait_s: float = 120):
        self.gguf, self.n_ctx, self.n_threads, self.wait_s = gguf, n_ctx, n_threads, wait_s
        self.process: Any = None
        self.log: Any = None
        self.base_url = ""

    def __enter__(self) -> LocalServer:
        import socket
        import subprocess
        import sys

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        command = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf),
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads),
        ]  # fmt: skip
        import tempfile

        # a file, not a pipe: a full pipe would stall the server's logging, then the server
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log)
        self._wait()
        return self

    def _wait(self) -> None:
        deadline = time.monotonic() + self.wait_s
        with ServerClient(self.base_url, timeout_s=2.0) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self.log.seek(0)
                    raise ModelError(f"llama_cpp.server exited: {self.log.read()[-2000:]}")
                if probe.probe()[0]:
                    return
                time.sleep(0.2)
        self.__exit__()
        raise ModelError(f"llama_cpp.server did not answer within {self.wait_s:g} s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()
                self.process.wait()
        if self.log is not None:
            self.log.close()
