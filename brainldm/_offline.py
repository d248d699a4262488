"""Whether this machine is declared offline, and one quiet request to ask a server."""

import os

__all__ = ["OFFLINE_VARIABLES", "PROBE_TIMEOUT", "offline_declared", "probe_hub"]

#: Environment variables that, set to 1, declare the machine offline: nothing is downloaded.
OFFLINE_VARIABLES = ("BRAINLDM_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
# Seconds that a server has to answer before it counts as unreachable.
PROBE_TIMEOUT = 10


def offline_declared():
    """The ``VARIABLE=value`` that declares the machine offline, or None.

    Read when called, not at import, so that a notebook may set it late.

    Examples
    --------
    >>> import os
    >>> os.environ["BRAINLDM_OFFLINE"] = "1"
    >>> offline_declared()
    'BRAINLDM_OFFLINE=1'
    >>> del os.environ["BRAINLDM_OFFLINE"]
    """
    for variable in OFFLINE_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if value.upper() in ("1", "ON", "YES", "TRUE"):
            return f"{variable}={value}"
    return None


def probe_hub(repo_id, filename):
    """Ask the Hugging Face hub once, without retries, for ``filename`` of ``repo_id``.

    Raises whatever the request raises (no network, no such repository, no
    access), within ``PROBE_TIMEOUT`` seconds, so that a caller can name the
    problem at once instead of waiting through the hub client's retries.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    get_hf_file_metadata(hf_hub_url(repo_id, filename), timeout=PROBE_TIMEOUT)
