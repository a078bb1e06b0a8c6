from __future__ import annotations

from traject.environments.gui.dom import DomElement, format_dom, parse_dom


def test_format_and_parse_round_trip():
    elements = [
        DomElement(id=1, tag="div", text='Click on the "ok" button.', box=(0, 0, 360, 35)),
        DomElement(id=2, tag="input", type="checkbox", checked=True, box=(10, 60, 13, 13), focused=True),
        DomElement(id=3, tag="select", label="names", value="Bo", options=["Al", "Bo b"], box=(10, 80, 90, 24)),
        DomElement(id=4, tag="button", text="far", box=(10, 700, 60, 24), placement="outside", disabled=True),
        DomElement(id=5, tag="div", role="img", label="red square", box=(1, 2, 3, 4)),
        DomElement(id=6, tag="button", text="under", box=(40, 60, 60, 24), placement="covered"),
    ]
    text = format_dom(elements)
    assert text.splitlines()[1] == "[2] input type=checkbox checked @(10,60,13,13) focused"
    assert text.splitlines()[3].endswith("disabled outside") and text.splitlines()[5].endswith(" covered")
    assert not elements[3].in_view and not elements[5].in_view and elements[0].in_view
    assert parse_dom(text) == elements
    assert elements[1].center == (16, 66)


def test_empty_listing():
    assert format_dom([]) == "(no visible elements)"
    assert parse_dom("nothing here") == []
