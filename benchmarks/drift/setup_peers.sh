#!/usr/bin/env bash
# Create benchmarks/.venv-peers with the peer drift detectors (Evidently, alibi-detect, scipy).
#
#   benchmarks/drift/setup_peers.sh            install, honouring constraints-peers.txt if present
#   benchmarks/drift/setup_peers.sh --refreeze  resolve afresh and rewrite constraints-peers.txt
#   PEERS_VENV=/some/dir benchmarks/drift/setup_peers.sh   install elsewhere
#
# Kept apart from the project's .venv on purpose: alibi-detect 0.13 needs numpy<2 and both
# peers pull in their own pandas/scipy versions.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${PEERS_VENV:-$(cd "$HERE/.." && pwd)/.venv-peers}"
PYTHON="${PYTHON:-python3.11}"
REQ="$HERE/requirements-peers.txt"
CON="$HERE/constraints-peers.txt"
export PIP_DISABLE_PIP_VERSION_CHECK=1

refreeze=0
[[ "${1:-}" == "--refreeze" ]] && refreeze=1

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"

if [[ $refreeze -eq 0 && -f "$CON" ]]; then
    "$VENV/bin/python" -m pip install --quiet -r "$REQ" -c "$CON"
else
    "$VENV/bin/python" -m pip install --quiet -r "$REQ"
    {
        echo "# pip freeze of benchmarks/.venv-peers ($("$VENV/bin/python" -V), $(date +%F))."
        echo "# Regenerate with: benchmarks/drift/setup_peers.sh --refreeze"
        "$VENV/bin/python" -m pip freeze --exclude-editable | grep -v '^pip=='
    } > "$CON"
fi

# Fail here, not in the middle of a benchmark run, if a peer cannot be imported; and prove
# the alibi-detect base install brought in no deep-learning framework.
"$VENV/bin/python" - <<'PY'
import importlib.util
import evidently, alibi_detect, scipy, pandas, numpy, pyarrow
from evidently import Report
from evidently.presets import DataDriftPreset
from alibi_detect.cd import TabularDrift
heavy = [m for m in ("tensorflow", "torch", "keras") if importlib.util.find_spec(m)]
print(f"peers ok: evidently {evidently.__version__}, alibi-detect {alibi_detect.__version__}, "
      f"scipy {scipy.__version__}, pandas {pandas.__version__}, numpy {numpy.__version__}, "
      f"pyarrow {pyarrow.__version__}; deep-learning frameworks present: {heavy or 'none'}")
PY
