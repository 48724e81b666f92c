"""Test doubles that stand in for services hiw talks to (a loopback OpenAI-compatible VLM server)."""
