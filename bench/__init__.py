"""Benchmarks for gradcheck (``make bench``, i.e. ``python bench/run.py --out reports``).

``run`` measures and writes the reports, ``checkers`` gives every checker one interface,
``baselines`` holds the two checkers we compare with, ``render`` turns results into files.
"""
