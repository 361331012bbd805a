"""The original library's module names: ``connector``, ``converters`` and
``tornado_connector``. An original program needs only its import lines
changed (``import connector`` becomes ``from pike.compat import connector``)
and Python 3 syntax."""
