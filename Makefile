# The README's two commands: `make demo` and `make test`. Both work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_SECONDS ?= 30
APT_GET := $(shell command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo) apt-get

.PHONY: demo test bench lint system-deps demo-deps check-arm64 clean
GUI_STAMP := $(VENV)/.gui

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory demo-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages the tests use: a real Mosquitto broker (and Chromium for the overlay page test).
system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v Xvfb >/dev/null 2>&1 || missing="$$missing xvfb"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive $(APT_GET) update -qq && \
		DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends $$missing; \
	fi

# Debian packages a bare system (Pi OS Lite, a minimal bookworm) lacks for `make demo`: Debian splits venv and
# pip out of python3. OpenCV is the headless wheel, so no libxcb/libGL/glib is needed.
demo-deps:
	@missing=""; \
	$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv python3-pip"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive $(APT_GET) update -qq && \
		DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq --no-install-recommends $$missing; \
	fi

# The window test (tests/test_overlay_window.py, on Xvfb) needs OpenCV's GUI build. Both wheels install the same
# cv2 package (pip cannot express "one or the other"), so both are removed and only the GUI one put back;
# `make demo` in the same .venv then runs on the GUI build, which also works headless.
$(GUI_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,gui]'
	$(PY) -m pip uninstall -q -y opencv-python-headless opencv-python
	$(PY) -m pip install -q --no-deps "$$($(PY) -c 'import tomllib;d=tomllib.load(open("pyproject.toml","rb"));print(d["project"]["optional-dependencies"]["gui"][0])')"
	touch $(GUI_STAMP)

demo: $(STAMP)
	$(VENV)/bin/vitaledge demo --seconds $(DEMO_SECONDS)

test: $(GUI_STAMP) system-deps
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pytest -q tests/bench --benchmark 2>/dev/null || true
	@for f in tests/bench/*.py; do [ -f "$$f" ] && $(PY) "$$f"; done; true

# arm64 Debian bookworm (Raspberry Pi OS's base) under qemu-user as a Cortex-A72: install, imports, and the
# demo's records compared with this machine's. About 25 minutes; run it after any dependency change (as root).
check-arm64: $(STAMP)
	sh tests/arm64/check_arm64.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check edge drivers fusion models tests
	$(VENV)/bin/mypy edge drivers fusion models

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
