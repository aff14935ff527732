"""tlutils.livefig: live figures that run in the browser with no kernel (chapters 03-05)."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from tlutils import livefig as lf

pytest.importorskip("plotly")


def _figure(**kw):
    states = {f"{a:g}": [lf.Line(np.arange(4), np.arange(4) * a, name="curve"),
                         lf.Bars(["x", "y"], [a, 1.0], name="bars", panel=1)]
              for a in (0.5, 1.0, 2.0)}
    args = dict(panels=[lf.Panel("left", "x", "y"), lf.Panel("right")], title="Demo",
                control_label="a", captions={"2": "two"}, initial="1",
                background=[lf.Contour(np.arange(3), np.arange(4), np.ones((4, 3)))])
    args.update(kw)
    return lf.LiveFigure("demo-fig", states, **args)


def test_plotly_figure_shows_only_the_initial_state():
    fig = _figure().to_plotly()
    visible = [t.visible for t in fig.data]
    assert visible == [True, False, False, True, True, False, False]  # background first
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["0.5", "1", "2"] and fig.layout.sliders[0].active == 1
    assert steps[2].args[0]["visible"] == [True, False, False, False, False, True, True]
    assert "two" in steps[2].args[1]["title.text"]


def test_dropdown_control():
    fig = _figure(control="dropdown").to_plotly()
    assert not fig.layout.sliders and len(fig.layout.updatemenus[0].buttons) == 3


def test_html_is_deterministic_and_carries_a_static_image():
    fig = _figure()
    html = fig.html(colab=False)
    assert html == _figure().html(colab=False)
    assert 'id="tl-livefig-demo-fig"' in html and 'class="tl-livefig"' in html
    # No script from elsewhere (the PNG's base64 may spell "cdn" by chance: leave it out).
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", html).lower()
    assert "cdn" not in text and "http" not in text and "window.Plotly.newPlot" in html
    png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", html).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == fig.png()
    spec = re.search(r"var fig = (\{.*\});\n", html).group(1)
    assert len(json.loads(spec)["data"]) == 7


def test_colab_html_loads_plotly_itself():
    from plotly.offline import get_plotlyjs_version

    html = _figure().html(colab=True)
    assert f"plotly-{get_plotlyjs_version()}.min.js" in html.split("<div")[0]


def test_mimebundle_for_book_pdf_and_text():
    bundle = _figure()._repr_mimebundle_()
    assert set(bundle) == {"text/html", "image/png", "text/plain"}
    assert bundle["text/plain"] == "LiveFigure('demo-fig', 3 states from '0.5' to '2', showing '1')"
    assert base64.b64decode(bundle["image/png"])[:4] == b"\x89PNG"


def test_static_figure_draws_the_initial_state():
    fig = _figure().static_figure()
    left, right = fig.axes
    assert left.get_title() == "left" and len(left.get_lines()) == 1
    assert np.allclose(left.get_lines()[0].get_ydata(), np.arange(4) * 1.0)
    assert "[a: 1]" in fig._suptitle.get_text()


def test_plotly_js_is_the_packaged_bundle():
    js = lf.plotly_js()
    assert len(js) > 1_000_000 and "plotly" in js[:2000].lower()


def test_bad_input():
    with pytest.raises(ValueError, match="name"):
        _figure().__class__("Bad Name", {"a": []})
    with pytest.raises(ValueError, match="states"):
        lf.LiveFigure("x", {})
    with pytest.raises(ValueError, match="panel"):
        lf.LiveFigure("x", {"a": [lf.Line([0], [0], panel=2)]})
    with pytest.raises(ValueError, match="traces"):
        lf.LiveFigure("x", {"a": [np.zeros(3)]})
    with pytest.raises(ValueError, match="control"):
        _figure(control="knob")
    with pytest.raises(ValueError, match="initial"):
        _figure(initial="7")
    with pytest.raises(ValueError, match="captions"):
        _figure(captions={"9": "x"})
