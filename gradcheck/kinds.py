"""Every allowed string, defined once: statuses, verdicts, methods, modes, guarantees, formats.

The values are plain ``str`` (and the exit codes plain ``int``), so a result's ``status`` still
compares equal to ``"pass"``, reads as ``"pass"`` in JSON and in a traceback, and needs no
conversion at any boundary; the names below are the only place the strings are spelt. Code
compares with the constants (``r.status == kinds.FAIL``) and validates with the tuples
(``method in kinds.METHODS``). A word that belongs to two vocabularies is one constant: ``AUTO``
is a method and a mode, ``PASS``, ``FAIL`` and ``INCONCLUSIVE`` are statuses and verdicts.

This module imports nothing from gradcheck, so every other module may import it.

Examples
--------
>>> from gradcheck import kinds
>>> kinds.PASSING <= set(kinds.STATUSES), set(kinds.VERDICTS) <= set(kinds.STATUSES)
(True, True)
>>> int(kinds.ExitCode.FAIL), kinds.ExitCode(4).name
(1, 'INCONCLUSIVE')
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AUTO", "CENTRAL", "CERTAIN", "COMPLEX", "DIRECTIONAL", "EMPTY", "FAIL", "FORMATS", "FULL",
    "GUARANTEES", "HTML", "INCONCLUSIVE", "JSON", "KINK", "MARKDOWN", "METHODS", "MODES",
    "NONFINITE", "NO_GUARANTEE", "PASS", "PASSING", "PROBABLE", "RICHARDSON", "SAMPLED", "SHAPE",
    "STATUSES", "TEXT", "VERDICTS", "ZERO", "ExitCode",
]

# --- the status of one gradient (GradientResult.status) -------------------------------------

PASS = "pass"  # every compared element within its budget
ZERO = "zero"  # both sides are zero up to the rounding of the terms they sum: the gradient
#                carries no evidence (the reason is in ``message``); passes with a warning
KINK = "kink"  # non-differentiable points found, and the analytic value is a valid choice there
FAIL = "fail"  # an element (or direction) outside its budget: a bug
INCONCLUSIVE = "inconclusive"  # the engines could not certify an estimate: neither pass nor fail
SHAPE = "shape"  # the gradient's shape differs from its input's
NONFINITE = "nonfinite"  # the gradient holds NaN or inf

STATUSES = (PASS, ZERO, KINK, FAIL, INCONCLUSIVE, SHAPE, NONFINITE)
PASSING = frozenset({PASS, ZERO, KINK})  # the statuses whose ``passed`` is true

# --- the verdict of one check (CheckReport.verdict) and of a document --------------------------

VERDICTS = (PASS, FAIL, INCONCLUSIVE)  # fail: a gradient failed or a problem was found;
#                                        inconclusive: nothing failed, something uncertified
EMPTY = "empty"  # the overall verdict of a document that holds no check (never a pass)

# --- numerical methods (check_layer's ``method``; GradientResult.method names the one that ran) -

AUTO = "auto"  # gradcheck chooses: the complex step where the forward carries it, else Richardson
COMPLEX = "complex"  # the complex step, Im L(x + ih e_k) / h: exact to rounding
CENTRAL = "central"  # central differences with a step scaled to the element
RICHARDSON = "richardson"  # Richardson extrapolation of central differences, with an error bound

METHODS = (AUTO, COMPLEX, CENTRAL, RICHARDSON)

# --- modes (check_layer's ``mode``; GradientResult.mode names the one that ran) --------------

FULL = "full"  # every element estimated
SAMPLED = "sampled"  # a seeded sample of elements plus random directions
DIRECTIONAL = "directional"  # random directions only (for about a million elements)

MODES = (AUTO, FULL, SAMPLED, DIRECTIONAL)  # auto: chosen per input by its size

# --- how a result's ``detectable`` holds (GradientResult.coverage.guarantee) ------------------

CERTAIN = "certain"  # the elements alone carry it: every element was compared one by one
#                      (full mode, or a sample that reached every element), no directions
PROBABLE = "probable"  # random directions carry it: an error that large is caught with
#                        probability at least 1 - MISS_PROBABILITY (sampled, directional modes)
NO_GUARANTEE = ""  # nothing carries it: ``detectable`` is NaN (a shape or non-finite gradient,
#                    directions without evidence), or came from part of the elements alone

GUARANTEES = (CERTAIN, PROBABLE, NO_GUARANTEE)

# --- report formats (gradcheck.report.render, ``--format``) ----------------------------------

TEXT = "text"  # for terminals: 100 columns, failures first
MARKDOWN = "markdown"  # GitHub tables, for CI summaries
HTML = "html"  # a self-contained page with inline CSS and SVG pictures
JSON = "json"  # stable keys, documented in reports/README.md

FORMATS = (TEXT, MARKDOWN, HTML, JSON)


# --- exit codes of the ``gradcheck`` command (documented in README) --------------------------


class ExitCode(IntEnum):
    """What ``gradcheck``'s exit status means; one meaning each, so CI can tell them apart."""

    PASS = 0  # every gradient passes (never without a verdict)
    FAIL = 1  # a gradient fails, the layer mutated its inputs, dout or cache, its backward is
    #           nondeterministic, its forward random, or (--against) the forward deviates
    USAGE = 2  # a usage or input error: a bad option, shape, seed or file; an unwritable --out
    LAYER = 3  # the layer crashed or misbehaved: raised, called sys.exit, returned something
    #            unusable, or overran --timeout
    INCONCLUSIVE = 4  # nothing failed, but a gradient could not be certified
    INTERRUPTED = 130  # interrupted (Ctrl-C), as shells report SIGINT (128 + 2)
