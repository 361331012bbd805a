"""The installed package: its stubs match the native module, and the
original's module names import."""

import ast
import importlib
from pathlib import Path

import pike
import pike._pike as native


def stub_names():
    stub = Path(pike.__file__).with_name("_pike.pyi")
    assert stub.exists(), "the stubs were not installed"
    tree = ast.parse(stub.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef)}


def test_the_stubs_cover_every_public_class():
    public = {name for name in dir(native) if not name.startswith("_") and isinstance(getattr(native, name), type)}
    # Serializer and deserializer objects of the primitives are covered too.
    assert public <= stub_names()


def test_the_original_modules_import():
    for name in ("pike.compat.connector", "pike.compat.converters", "pike.compat.tornado_connector"):
        module = importlib.import_module(name)
        for exported in module.__all__:
            assert getattr(module, exported) is not None


def test_the_package_is_typed():
    assert Path(pike.__file__).with_name("py.typed").exists()
