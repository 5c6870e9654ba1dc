"""Agent Lightning instrumentation for the Python Claude Agent SDK.

from claude_agent_sdk import ClaudeAgentOptions, query
from agent_lightning import instrument

lightning = instrument(collector_url="http://localhost:4000", api_key="…", agent_id="my-agent")
async for message in query(prompt="…", options=ClaudeAgentOptions(hooks=lightning.hooks)):
    ...
"""

from ._assignments import PromptResult
from ._instrument import (
    NO_POST_HOOK,
    VERSION,
    Lightning,
    LightningStats,
    instrument,
    merge_hooks,
    to_json,
)
from ._redact import Redactor, is_sensitive_key
from ._spool import default_spool_dir

__all__ = [
    "NO_POST_HOOK",
    "VERSION",
    "Lightning",
    "LightningStats",
    "PromptResult",
    "Redactor",
    "default_spool_dir",
    "instrument",
    "is_sensitive_key",
    "merge_hooks",
    "to_json",
]
__version__ = VERSION
