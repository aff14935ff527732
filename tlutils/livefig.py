"""Live figures: results computed by the notebook, explored in the browser with no kernel.

A :class:`LiveFigure` holds one set of traces (lines, bars, pictures, contours) per setting of
a control, for example the loss curves for thirty learning rates. It is drawn with Plotly
(https://plotly.com/python/): every state's data is embedded in the page, and a slider (or a
drop-down selector) shows one state at a time, entirely in the browser. The same object
displays

- in the built book as Plotly HTML; the book serves Plotly's JavaScript itself, once, from
  ``_static/plotly.min.js`` (``_ext/book_fixes.py`` copies it out of the ``plotly`` package);
- in Google Colab as the same figure, with Plotly's JavaScript loaded by the browser;
- as a static PNG of the initial state (matplotlib) for the PDF, for readers without
  JavaScript, and anywhere Plotly's JavaScript is not loaded (it sits inside the figure's
  ``<div>`` until Plotly replaces it).

The HTML is deterministic: the ``<div>`` id comes from the figure's ``name``, so committed
notebook outputs compare exactly under strict nbval (the embedded PNG is masked by
``tests/nbval_sanitize.cfg``, as nbval skips ``image/png`` outputs).

Used by the figure builders in :mod:`tlutils.widgets` (chapters 03, 04 and 05).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Bars", "Contour", "Line", "LiveFigure", "Panel", "Picture", "PALETTE",
           "plotly_js"]

#: Colours given to traces by name, in order of first appearance (matplotlib's tab10).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
#: Numbers along an axis: a sequence or a NumPy array.
Values = Sequence[float] | np.ndarray


def _array(value, what: str, ndim: int = 1) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != ndim or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty {ndim}-D array, got shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class Line:
    """A line or a set of markers in panel ``panel``; ``error`` adds vertical error bars
    (section 3.1, the learning-rate explorer)."""

    x: Sequence[Any] | np.ndarray
    y: Values
    name: str = ""
    panel: int = 0
    mode: str = "lines"  # "lines", "markers" or "lines+markers"
    color: str | None = None
    dash: bool = False
    width: float = 2.0
    size: float = 6.0
    error: Values | None = None
    legend: bool = True


@dataclass(frozen=True)
class Bars:
    """Bars over categories ``x`` with heights ``y`` (and optional error bars; section 4.3,
    the label-budget figure)."""

    x: Sequence[str] | np.ndarray
    y: Values
    name: str = ""
    panel: int = 0
    color: str | None = None
    error: Values | None = None
    legend: bool = False


@dataclass(frozen=True)
class Picture:
    """A greyscale image ``z`` (2-D, values in ``[vmin, vmax]``), drawn with row 0 on top
    (section 5.4, the drifted digits)."""

    z: np.ndarray
    panel: int = 0
    vmin: float = 0.0
    vmax: float = 1.0
    name: str = ""
    legend: bool = False


@dataclass(frozen=True)
class Contour:
    """``levels`` evenly spaced contour lines of ``z``, of shape ``(len(y), len(x))``
    (section 3.1, the loss surface)."""

    x: Values
    y: Values
    z: np.ndarray
    levels: int = 12
    panel: int = 0
    name: str = ""
    legend: bool = False


Trace = Line | Bars | Picture | Contour


@dataclass(frozen=True)
class Panel:
    """One subplot: title, axis labels, log axes, fixed ranges in data units (section 3.1)."""

    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    log_x: bool = False
    log_y: bool = False
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None
    picture: bool = False  # equal aspect, no ticks, row 0 on top
    ticks: Sequence[float] | None = field(default=None)


def plotly_js() -> str:
    """Plotly's JavaScript bundle (``plotly.min.js``) from the installed ``plotly`` package:
    what the book serves once as ``_static/plotly.min.js`` (no CDN, no npm; section 3.1)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _in_colab() -> bool:
    return "google.colab" in sys.modules


class LiveFigure:
    """A figure with one state per control setting, shown one at a time (chapters 03-05).

    ``states`` maps each setting's label (shown on the slider) to the traces drawn for it;
    ``background`` traces are always shown. ``control`` is ``"slider"`` or ``"dropdown"``.
    ``captions`` (optional, per state) are shown under the title. ``initial`` is the label
    shown first and in the static image (default: the first). ``name`` (lower-case letters,
    digits and hyphens) fixes the HTML element id, so the output is the same on every run.
    """

    def __init__(self, name: str, states: Mapping[str, Sequence[Trace]], *,
                 panels: Sequence[Panel] = (Panel(),), title: str = "",
                 control: str = "slider", control_label: str = "",
                 background: Sequence[Trace] = (), captions: Mapping[str, str] | None = None,
                 initial: str | None = None, height: int = 400) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"name must be lower-case letters, digits and hyphens, got {name!r}")
        if not isinstance(states, Mapping) or not states:
            raise ValueError("states must be a non-empty mapping label -> traces")
        if not isinstance(panels, Sequence) or not panels or not all(
                isinstance(p, Panel) for p in panels):
            raise ValueError("panels must be a non-empty sequence of Panel")
        if control not in ("slider", "dropdown"):
            raise ValueError(f"control must be 'slider' or 'dropdown', got {control!r}")
        if not isinstance(height, int) or not 150 <= height <= 2000:
            raise ValueError(f"height must be an int of pixels in [150, 2000], got {height!r}")
        self.states = {str(k): tuple(v) for k, v in states.items()}
        for label, traces in [*self.states.items(), ("background", tuple(background))]:
            for t in traces:
                if not isinstance(t, (Line, Bars, Picture, Contour)):
                    raise ValueError(f"states[{label!r}] holds {type(t).__name__}; traces must "
                                     "be Line, Bars, Picture or Contour")
                if not 0 <= t.panel < len(panels):
                    raise ValueError(f"a trace of {label!r} names panel {t.panel}, but there "
                                     f"are {len(panels)} panels")
        captions = dict(captions or {})
        unknown = set(captions) - set(self.states)
        if unknown:
            raise ValueError(f"captions names unknown states {sorted(unknown)}")
        if initial is None:
            initial = next(iter(self.states))
        if initial not in self.states:
            raise ValueError(f"initial must be one of the state labels, got {initial!r}")
        self.name, self.panels, self.title = name, tuple(panels), str(title)
        self.control, self.control_label = control, str(control_label)
        self.background = tuple(background)
        self.captions = captions
        self.initial = initial
        self.height = height
        names = [t.name for ts in (self.background, *self.states.values()) for t in ts
                 if t.name and getattr(t, "color", None) is None]
        self.colour_of = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(dict.fromkeys(names))}

    # -- shared ----------------------------------------------------------------------------
    def colour(self, trace) -> str:
        return trace.color or self.colour_of.get(trace.name, PALETTE[0])

    def title_for(self, label: str, *, sub_tag: bool) -> str:
        caption = self.captions.get(label, "")
        if not caption:
            return self.title
        lines = textwrap.wrap(caption, 100)
        if sub_tag:
            return (f"{html.escape(self.title)}<br><span style=\"font-size:12px\">"
                    + "<br>".join(html.escape(line) for line in lines) + "</span>")
        return "\n".join([self.title, *lines] if self.title else lines)

    def caption_lines(self) -> int:
        return max([len(textwrap.wrap(c, 100)) for c in self.captions.values()] or [0])

    def __repr__(self) -> str:
        labels = list(self.states)
        return (f"LiveFigure({self.name!r}, {len(labels)} states from {labels[0]!r} to "
                f"{labels[-1]!r}, showing {self.initial!r})")

    # -- Plotly ----------------------------------------------------------------------------
    def to_plotly(self):
        """The figure as a ``plotly.graph_objects.Figure`` with its slider or selector."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=len(self.panels),
                            subplot_titles=[p.title for p in self.panels],
                            horizontal_spacing=0.1)
        seen_legend: set[str] = set()
        owners: list[str | None] = []  # state label of each trace, None for background

        def add(trace, owner: str | None) -> None:
            show = trace.legend and bool(trace.name) and (owner in (None, self.initial))
            show = show and trace.name not in seen_legend
            if show:
                seen_legend.add(trace.name)
            visible = owner is None or owner == self.initial
            fig.add_trace(self.plotly_trace(go, trace, visible, show), row=1,
                          col=trace.panel + 1)
            owners.append(owner)

        for t in self.background:
            add(t, None)
        for label, traces in self.states.items():
            for t in traces:
                add(t, label)
        for i, panel in enumerate(self.panels, start=1):
            xa: dict[str, Any] = {}
            ya: dict[str, Any] = {}
            if panel.log_x:
                xa.update(type="log", exponentformat="power")
            if panel.log_y:
                ya.update(type="log", exponentformat="power")
            if panel.x_range is not None:
                xa["range"] = [float(np.log10(v)) if panel.log_x else float(v)
                               for v in panel.x_range]
            if panel.y_range is not None:
                ya["range"] = [float(np.log10(v)) if panel.log_y else float(v)
                               for v in panel.y_range]
            if panel.ticks is not None:
                xa["tickvals"] = [float(v) for v in panel.ticks]
            if panel.picture:
                xa.update(showticklabels=False, showgrid=False, zeroline=False)
                ya.update(showticklabels=False, showgrid=False, zeroline=False,
                          autorange="reversed", scaleanchor=f"x{i}" if i > 1 else "x")
            fig.update_xaxes(title_text=panel.xlabel, row=1, col=i, **xa)
            fig.update_yaxes(title_text=panel.ylabel, row=1, col=i, **ya)

        steps = []
        for label in self.states:
            visible = [owner is None or owner == label for owner in owners]
            steps.append({"label": label, "method": "update",
                          "args": [{"visible": visible},
                                   {"title.text": self.title_for(label, sub_tag=True)}]})
        active = list(self.states).index(self.initial)
        layout: dict[str, Any] = {"title": {"text": self.title_for(self.initial, sub_tag=True), "x": 0.02,
                            "font": {"size": 14}},
                  "template": "plotly_white", "height": self.height, "barmode": "overlay",
                  "margin": {"l": 60, "r": 20, "t": 66 + 14 * self.caption_lines(), "b": 40},
                  "legend": {"orientation": "h", "x": 0, "yanchor": "top"}}
        if self.control == "slider":
            layout["sliders"] = [{"active": active, "steps": steps, "pad": {"t": 50},
                                  "currentvalue": {"prefix": f"{self.control_label}: "
                                                   if self.control_label else ""}}]
            layout["margin"]["b"] = 170
            layout["height"] = self.height + 150
            below = 140  # pixels from the plot's bottom edge to the legend: axis title, slider
        else:
            layout["updatemenus"] = [{"type": "dropdown", "active": active,
                                      "buttons": [{k: s[k] for k in ("label", "method", "args")}
                                                  for s in steps],
                                      "x": 1.0, "xanchor": "right", "y": 1.18,
                                      "yanchor": "top"}]
            layout["margin"]["t"] += 40
            layout["margin"]["b"] = 90
            layout["height"] = self.height + 70
            below = 60
        plot_height = layout["height"] - layout["margin"]["t"] - layout["margin"]["b"]
        layout["legend"]["y"] = -below / plot_height
        fig.update_layout(**layout)
        if self.control == "dropdown" and self.control_label:
            fig.add_annotation(text=html.escape(self.control_label), x=1.0, xanchor="right",
                               y=1.32, yref="paper", xref="paper", showarrow=False)
        return fig

    def plotly_trace(self, go, t, visible: bool, show: bool):
        common = {"name": t.name, "visible": visible, "showlegend": show,
                  "legendgroup": t.name or None}
        if isinstance(t, Line):
            x = [str(v) for v in t.x] if _categorical(t.x) else _array(t.x, "Line.x")
            kw: dict[str, Any] = {"x": x, "y": _array(t.y, "Line.y"), "mode": t.mode,
                  "line": {"color": self.colour(t), "width": t.width,
                           "dash": "dash" if t.dash else "solid"},
                  "marker": {"color": self.colour(t), "size": t.size}}
            if t.error is not None:
                kw["error_y"] = {"type": "data", "array": _array(t.error, "Line.error"),
                                 "visible": True}
            return go.Scatter(**kw, **common)
        if isinstance(t, Bars):
            kw = {"x": [str(v) for v in t.x], "y": _array(t.y, "Bars.y"),
                                  "marker": {"color": self.colour(t)}}
            if t.error is not None:
                kw["error_y"] = {"type": "data", "array": _array(t.error, "Bars.error"),
                                 "visible": True}
            return go.Bar(**kw, **common)
        if isinstance(t, Picture):
            return go.Heatmap(z=_array(t.z, "Picture.z", 2), zmin=t.vmin, zmax=t.vmax,
                              colorscale="gray", showscale=False, hoverinfo="skip", **common)
        z = _array(t.z, "Contour.z", 2)
        return go.Contour(x=_array(t.x, "Contour.x"), y=_array(t.y, "Contour.y"), z=z,
                          ncontours=t.levels, contours={"coloring": "lines"},
                          line={"color": "#bbbbbb", "width": 1}, colorscale=[[0, "#bbbbbb"],
                                                                            [1, "#bbbbbb"]],
                          showscale=False, hoverinfo="skip", **common)

    def plotly_json(self) -> str:
        """The figure's data and layout as compact JSON (what the page embeds)."""
        import plotly.io as pio

        return pio.to_json(self.to_plotly(), validate=False, pretty=False)

    # -- static fallback ---------------------------------------------------------------------
    def static_figure(self):
        """The initial state as a matplotlib ``Figure`` (not a pyplot figure, so nothing is
        displayed twice): the PDF's and the no-JavaScript reader's image."""
        from matplotlib.figure import Figure

        n = len(self.panels)
        fig = Figure(figsize=(min(4.6 * n, 10.0), self.height / 100 + 0.2), dpi=100)
        axes = fig.subplots(1, n, squeeze=False)[0]
        for t in (*self.background, *self.states[self.initial]):
            self.draw_static(axes[t.panel], t)
        for ax, panel in zip(axes, self.panels):
            ax.set_title(panel.title, fontsize=9)
            ax.set_xlabel(panel.xlabel, fontsize=9)
            ax.set_ylabel(panel.ylabel, fontsize=9)
            if panel.log_x:
                ax.set_xscale("log")
            if panel.log_y:
                ax.set_yscale("log")
            if panel.x_range is not None:
                ax.set_xlim(*panel.x_range)
            if panel.y_range is not None:
                ax.set_ylim(*panel.y_range)
            if panel.ticks is not None:
                ax.set_xticks(list(panel.ticks))
                ax.set_xticklabels([f"{v:g}" for v in panel.ticks])
            if panel.picture:
                ax.set_xticks([])
                ax.set_yticks([])
            ax.tick_params(labelsize=8)
            if any(line.get_label() and not line.get_label().startswith("_")
                   for line in ax.get_lines() + list(ax.containers)):
                ax.legend(fontsize=7)
        title = self.title_for(self.initial, sub_tag=False)
        label = f"{self.control_label}: {self.initial}" if self.control_label else self.initial
        fig.suptitle(f"{title}\n[{label}]" if title else f"[{label}]", fontsize=10)
        fig.tight_layout()
        return fig

    def draw_static(self, ax, t) -> None:
        label = t.name if (t.legend and t.name) else "_nolegend_"
        if isinstance(t, Line):
            fmt = {"lines": "-", "markers": "o", "lines+markers": "-o"}.get(t.mode, "-")
            if t.dash:
                fmt = fmt.replace("-", "--")
            x = [str(v) for v in t.x] if _categorical(t.x) else np.asarray(t.x)
            if t.error is not None:
                ax.errorbar(x, np.asarray(t.y), yerr=np.asarray(t.error), fmt=fmt,
                            color=self.colour(t), ms=t.size / 2, lw=t.width / 1.5,
                            capsize=3, label=label)
            else:
                ax.plot(x, np.asarray(t.y), fmt, color=self.colour(t), ms=t.size / 2,
                        lw=t.width / 1.5, label=label)
        elif isinstance(t, Bars):
            ax.bar([str(v) for v in t.x], np.asarray(t.y), color=self.colour(t),
                   yerr=None if t.error is None else np.asarray(t.error), capsize=3,
                   label=label)
        elif isinstance(t, Picture):
            ax.imshow(np.asarray(t.z), cmap="gray", vmin=t.vmin, vmax=t.vmax,
                      aspect="equal", interpolation="nearest")
        else:
            ax.contour(np.asarray(t.x), np.asarray(t.y), np.asarray(t.z), levels=t.levels,
                       colors="0.75", linewidths=0.7, linestyles="solid")

    def png(self) -> bytes:
        """:meth:`static_figure` as PNG bytes (deterministic: no software metadata)."""
        buf = io.BytesIO()
        self.static_figure().savefig(buf, format="png", dpi=100, metadata={"Software": None})
        return buf.getvalue()

    # -- HTML --------------------------------------------------------------------------------
    def html(self, *, colab: bool | None = None, png: bytes | None = None) -> str:
        """The HTML fragment: a ``<div>`` holding the static image, replaced by the live
        figure where Plotly's JavaScript is loaded (the book's page, or Colab, where
        ``colab=True`` adds Plotly's own script tag; default: detect Colab)."""
        colab = _in_colab() if colab is None else bool(colab)
        png = self.png() if png is None else png
        div_id = f"tl-livefig-{self.name}"
        image = base64.b64encode(png).decode("ascii")
        alt = html.escape(f"{self.title} (static image: {self.initial})", quote=True)
        spec = json.dumps(json.loads(self.plotly_json()), separators=(",", ":"))
        spec = spec.replace("</", "<\\/")  # never close the <script> early
        config = json.dumps({"responsive": True, "displaylogo": False, "showLink": False,
                             "modeBarButtonsToRemove": ["select2d", "lasso2d"]})
        loader = ""
        if colab:
            from plotly.offline import get_plotlyjs_version

            loader = (f'<script src="https://cdn.plot.ly/plotly-{get_plotlyjs_version()}'
                      '.min.js" charset="utf-8"></script>\n')
        return (
            f'{loader}<div class="tl-livefig" id="{div_id}" data-name="{self.name}" '
            f'style="width:100%;min-height:{self.height}px">'
            f'<img alt="{alt}" style="max-width:100%" src="data:image/png;base64,{image}"/>'
            "</div>\n"
            '<script type="text/javascript">\n'
            "(function () {\n"
            "  function draw() {\n"
            f'    var el = document.getElementById("{div_id}");\n'
            "    if (!el || !window.Plotly || el.dataset.drawn) { return; }\n"
            f"    var fig = {spec};\n"
            "    el.dataset.drawn = \"1\";\n"
            "    el.innerHTML = \"\";\n"
            "    el.style.minHeight = \"\";\n"
            "    el.style.height = fig.layout.height + \"px\";\n"
            f"    window.Plotly.newPlot(el, fig.data, fig.layout, {config});\n"
            "  }\n"
            "  // The book loads Plotly deferred (after this script, before DOMContentLoaded);\n"
            "  // where Plotly never loads, the static image stays.\n"
            "  if (window.Plotly) { draw(); }\n"
            "  else if (document.readyState === \"loading\") {\n"
            "    document.addEventListener(\"DOMContentLoaded\", draw);\n"
            "  }\n"
            "})();\n"
            "</script>\n")

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        png = self.png()
        bundle = {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": repr(self)}
        try:
            import plotly  # noqa: F401  (Colab and the book's environment have it)
        except ImportError:  # without Plotly, the static image alone
            return bundle
        return {"text/html": self.html(png=png), **bundle}


def _categorical(values) -> bool:
    return any(isinstance(v, str) for v in values)
