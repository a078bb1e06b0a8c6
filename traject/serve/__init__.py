"""``traject serve``: a local Hugging Face model over the OpenAI API subset traject uses, with
vLLM's token-id fields, SGLang's ``/generate``, weight updates and policy versions.
See :mod:`traject.serve.app` for the endpoints."""

from traject.serve.engine import ServeEngine
from traject.serve.protocol import POLICY_VERSION_HEADER
from traject.serve.server import DEFAULT_HOST, ServerThread, serve

__all__ = ["DEFAULT_HOST", "POLICY_VERSION_HEADER", "ServeEngine", "ServerThread", "serve"]
