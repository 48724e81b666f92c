"""Run the async annotator beside a synchronous build: its own event loop on a background thread.

The build hands over each clip as soon as its motion is accepted and goes on tracking the next ones, so
VLM calls overlap tracking; the annotator's own limits keep the server saturated but not flooded.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

from hiw.annotators.pcot import ClipAnnotation, ClipInput, PCoTAnnotator


class AnnotationSession:
    def __init__(self, annotator: PCoTAnnotator):
        self.annotator = annotator
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hiw-vlm", daemon=True)
        self._thread.start()

    def submit(self, clip: ClipInput) -> Future[ClipAnnotation]:
        return asyncio.run_coroutine_threadsafe(self.annotator.annotate(clip), self._loop)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.annotator.aclose(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> AnnotationSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
