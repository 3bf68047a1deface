"""The registry as a reference: ``ebmgraph nodes`` (text) and docs/nodes.md (Markdown)."""

from __future__ import annotations

import inspect

import attrs

from ebmgraph.nodes.catalog import MODELS, NODES, OPTIMIZERS


def _type_name(annotation) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def _fields(config_cls) -> list[tuple[str, str, str]]:
    out = []
    for field in attrs.fields(attrs.resolve_types(config_cls)):
        if field.default is attrs.NOTHING:
            default = "required"
        elif isinstance(field.default, attrs.Factory):
            default = repr(field.default.factory())
        else:
            default = repr(field.default)
        out.append((field.name, _type_name(field.type), default))
    return out


def _origin(cls) -> str:
    """Empty for ebmgraph's own types; for a plugin's, where it comes from."""
    return "" if cls.__module__.split(".")[0] == "ebmgraph" else f", plugin {inspect.getsourcefile(cls)}"


def _entries(builtin_only: bool):
    """(section, type name, docstring, ports, config fields) for every registered type (ebmgraph's
    own only, with ``builtin_only``)."""
    def listed(registry):
        return [cls for cls in registry if not (builtin_only and _origin(cls))]

    for cls in listed(NODES):
        ports = [("in", p.name, str(p.type) + (" (delay)" if p.delay else ""), p.doc) for p in cls.inputs]
        ports += [("out", p.name, str(p.type), p.doc) for p in cls.outputs]
        yield f"node ({cls.family}{_origin(cls)})", cls.type_name, cls.doc(), ports, _fields(cls.Config)
    for cls in listed(MODELS):
        role = getattr(cls, "role", "copy of another model")
        yield f"model ({role}{_origin(cls)})", cls.type_name, cls.doc(), [], _fields(cls.Config)
    for cls in listed(OPTIMIZERS):
        origin = _origin(cls)
        yield f"optimizer ({origin[2:]})" if origin else "optimizer", cls.type_name, cls.doc(), [], _fields(cls.Config)


def text_reference(builtin_only: bool = False) -> str:
    lines = []
    for section, name, doc, ports, fields in _entries(builtin_only):
        lines.append(f"{name}  [{section}]")
        lines += [f"    {line}" for line in doc.splitlines()]
        for direction, port, kind, port_doc in ports:
            lines.append(f"    {direction:>3} {port}: {kind}  {port_doc}")
        for field, kind, default in fields:
            lines.append(f"    {field}: {kind} = {default}")
        lines.append("")
    return "\n".join(lines)


def markdown_reference(builtin_only: bool = False) -> str:
    lines = ["# Node reference", "",
             "Generated from the registry by `ebmgraph nodes --markdown`; do not edit by hand.", ""]
    for section, name, doc, ports, fields in _entries(builtin_only):
        lines += [f"## `{name}` ({section})", "", doc, ""]
        if ports:
            lines += ["| port | direction | type | meaning |", "|---|---|---|---|"]
            lines += [f"| `{port}` | {direction} | `{kind}` | {port_doc} |" for direction, port, kind, port_doc in ports]
            lines.append("")
        if fields:
            lines += ["| key | type | default |", "|---|---|---|"]
            lines += [f"| `{field}` | `{kind}` | `{default}` |" for field, kind, default in fields]
            lines.append("")
    return "\n".join(lines)
