"""Test support that users of traject need too: a scripted OpenAI-compatible server."""

from traject.testing.openai_server import ChatRequest, ScriptedChatServer, ScriptedReply

__all__ = ["ChatRequest", "ScriptedChatServer", "ScriptedReply"]
