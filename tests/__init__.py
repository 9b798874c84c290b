"""The project's tests (not installed). A package so that the tests of the ``sim`` package,
:mod:`tests.sim`, have names of their own (``tests.sim.test_top``, not a second ``test_top``
beside ``tests/hw``'s; not ``sim.*``, the installed package's)."""
