"""The ndx-autolfads NWB extension: loading its namespace into pynwb and the container types.

Owns: the namespace YAML's location and version (:mod:`.namespace`). May import: pynwb, hdmf,
yaml and :mod:`nwb_autolfads.errors`; nothing else of the package (no torch), so it could ship as
its own ``ndx-autolfads`` package.
"""
