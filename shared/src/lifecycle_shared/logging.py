"""JSON logs on stdout, one object per line (python-json-logger).

Tracebacks keep their frames (file, line, code) but not the exceptions' texts, which quote the
data an error was about: every logged exception goes through `describe_error`.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

from pythonjsonlogger.json import JsonFormatter

from lifecycle_shared.errors import describe_error


class PersonalDataSafeFormatter(JsonFormatter):
    def formatException(  # noqa: N802 - logging's name
        self, ei: tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
    ) -> str:
        _, error, tb = ei
        lines = traceback.format_tb(tb)
        cause = (error.__cause__ or error.__context__) if error is not None else None
        for _ in range(5):  # a chain can be long (or, rarely, a cycle)
            if cause is None:
                break
            lines.append(f"caused by {describe_error(cause)}\n")
            cause = cause.__cause__ or cause.__context__
        return "".join(lines) + (describe_error(error) if error is not None else "")


def configure_logging(*, service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        PersonalDataSafeFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
