"""The tfxray command-line interface (installed as ``tfxray.cli``). Commands hold no logic of their own."""
