"""A model registered before ml/ became packages names its classes by the old module paths; it must still load."""

from __future__ import annotations

import pickle


def old_path_pickle(obj, new: str, old: str) -> bytes:
    """`obj` pickled as an older version would have: protocol 0 names each class as `module\\nname`."""
    data = pickle.dumps(obj, protocol=0)
    assert new.encode() in data
    return data.replace(f"{new}\n".encode(), f"{old}\n".encode())


def test_classes_saved_under_the_old_module_names_load_after_install():
    from ml.propensity.bgnbd import BgNbdFeatures
    from ml.registry.legacy_names import install
    from ml.uplift.model import UpliftPyfunc

    install()
    step = pickle.loads(old_path_pickle(BgNbdFeatures(), "ml.propensity.bgnbd", "ml.bgnbd"))
    assert type(step) is BgNbdFeatures
    assert pickle.loads(old_path_pickle(UpliftPyfunc, "ml.uplift.model", "ml.uplift")) is UpliftPyfunc


def test_skops_trusts_the_old_name_of_the_bgnbd_step():
    """skops imports a trusted type by its saved name: the old one must resolve to the same class."""
    import importlib

    from ml.propensity.bgnbd import BgNbdFeatures
    from ml.registry.legacy_names import install

    install()
    assert importlib.import_module("ml.bgnbd").BgNbdFeatures is BgNbdFeatures
