"""sessionlite: an asyncio session store for AI agents, on SQLite.

Durable, fast, bounded and observable storage for agent conversations: their events,
tool calls, state and summaries. Start with :class:`SessionService`.
"""

from __future__ import annotations

from .config import ServiceOptions
from .errors import (
    DatabaseCorruptError,
    DatabaseLockedError,
    EventConflictError,
    InvalidInputError,
    PersistenceError,
    SchemaVersionError,
    ServiceClosedError,
    SessionExistsError,
    SessionLiteError,
    SessionNotFoundError,
    StaleSessionError,
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    SummaryQueueFullError,
)
from .hooks import AppendContext, GetSessionContext
from .models import JSON, Event, Session, SessionPage, Summary, ToolCall, ToolResult, Usage
from .service import SessionService, default_db_path
from .stats import CleanupReport, ServiceStats
from .summaries import Summarizer, SummaryRequest

__version__ = "0.1.0"

__all__ = [
    "JSON",
    "AppendContext",
    "CleanupReport",
    "DatabaseCorruptError",
    "DatabaseLockedError",
    "Event",
    "EventConflictError",
    "GetSessionContext",
    "InvalidInputError",
    "PersistenceError",
    "SchemaVersionError",
    "ServiceClosedError",
    "ServiceOptions",
    "ServiceStats",
    "Session",
    "SessionExistsError",
    "SessionLiteError",
    "SessionNotFoundError",
    "SessionPage",
    "SessionService",
    "StaleSessionError",
    "StorageError",
    "StorageFullError",
    "StorageUnavailableError",
    "Summarizer",
    "Summary",
    "SummaryQueueFullError",
    "SummaryRequest",
    "ToolCall",
    "ToolResult",
    "Usage",
    "__version__",
    "default_db_path",
]
