# Shortcuts for the two commands in README.md (they work without make, too).
PYTHON ?= python3

.PHONY: start test quick
start:            ## set up .venv, check the environment, train Lesson 1 in full
	$(PYTHON) scripts/lab.py start
quick:            ## the same, on a small slice (seconds)
	$(PYTHON) scripts/lab.py start --quick
test:             ## set up .venv and run the tests but the full-length and long ones (what CI runs)
	$(PYTHON) scripts/lab.py test
