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

# WeasyPrint subsets fonts with HarfBuzz when Debian's libharfbuzz-subset0 is there (a one-page PDF in about
# 0.13 s); without it, in pure Python (about 0.4 s). Installed when missing and we may.
ensure_pdf_fonts() {
  if command -v dpkg >/dev/null 2>&1 && ! dpkg -s libharfbuzz-subset0 >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing Debian's libharfbuzz-subset0 (fast PDF font subsetting)"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libharfbuzz-subset0 >/dev/null) \
        || echo "could not install libharfbuzz-subset0: PDFs will be slower" >&2
    else
      echo "libharfbuzz-subset0 is missing: PDFs will be slower (install Debian's package)" >&2
    fi
  fi
}
