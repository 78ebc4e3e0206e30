"""Where the classes inside saved models lived before `ml/` was split into step packages.

A registered model names its classes by module: skops lists `ml.bgnbd.BgNbdFeatures` as a trusted type and
the coupon model's cloudpickle refers to `ml.uplift.UpliftPyfunc`. So that a version registered before the
split still loads (a champion keeps scoring after an upgrade), loading a model first makes the old names
point at the new places. Nothing else uses the old names.
"""

from __future__ import annotations

import importlib
import sys

MOVED_MODULES = {"ml.bgnbd": "ml.propensity.bgnbd", "ml.models": "ml.propensity.estimators"}
# ml.uplift was a module and is now a package: its classes are looked up on the package.
MOVED_CLASSES = {"ml.uplift": ("ml.uplift.model", ["CouponUpliftModel", "UpliftPyfunc"])}


def install() -> None:
    for old, new in MOVED_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))
    for old, (new, names) in MOVED_CLASSES.items():
        package, module = importlib.import_module(old), importlib.import_module(new)
        for name in names:
            if not hasattr(package, name):
                setattr(package, name, getattr(module, name))
