# Shared by demo.sh and test.sh: a virtual environment with the project installed.
ensure_venv() {
  local extras="$1"
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  # shellcheck disable=SC1091
  source .venv/bin/activate
  local stamp=".venv/.installed${extras:+-$extras}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    python -m pip install --quiet --upgrade pip
    if [ -n "$extras" ]; then
      python -m pip install --quiet -e ".[$extras]"
    else
      python -m pip install --quiet -e .
    fi
    touch "$stamp"
  fi
}
