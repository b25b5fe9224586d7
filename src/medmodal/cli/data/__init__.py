"""The data verbs of each family (synthesise, inspect, split, ...), one module per image kind; registered
under ``medmodal <family>`` by :mod:`medmodal.cli.families`."""
