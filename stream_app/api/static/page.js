// The live page: segment sizes, their days, the moves between them, the live feed of
// changes, a customer lookup and the stream's pace. Plain JS over plotly.js; no build step.
"use strict";

(function (RFM) {
  var FEED_MAX = 50;
  var SEGMENTS_EVERY_MS = 15000;
  var STREAM_EVERY_MS = 3000;
  var PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
  var FONT = { family: "Inter, 'Segoe UI', system-ui, sans-serif", size: 13, color: "#243042" };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (name === "text") node.textContent = attrs[name];
      else if (name === "className") node.className = attrs[name];
      else node.setAttribute(name, attrs[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  // An empty state or an error in a card's message box; null hides it.
  function message(box, text, kind) {
    box.hidden = !text;
    box.textContent = text || "";
    box.classList.toggle("error", kind === "error");
  }

  function failure(what, error) {
    return "Could not load " + what + ": " + (error && error.message ? error.message : error);
  }

  function segmentBadge(name, extraClass) {
    var badge = el("span", { className: "segment-badge " + (extraClass || ""),
      text: RFM.label(name), "data-segment": name === null ? "" : name });
    if (name !== null) badge.style.setProperty("--segment", RFM.colour(name));
    return badge;
  }

  function layout(extra) {
    return Object.assign({
      font: FONT, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      margin: { l: 10, r: 10, t: 10, b: 10 },
      hoverlabel: { font: { family: FONT.family } },
    }, extra);
  }

  // ---- Segments now --------------------------------------------------------------------

  var segmentsLoaded = null;

  function showSegments(body) {
    RFM.learnLabels(body.segments);
    $("kpi-customers").textContent = RFM.count(body.customers);
    $("kpi-model").textContent = RFM.version(body.model_version);
    $("kpi-model").title = body.model_version || "";
    $("segments-updated").textContent = "Updated " + RFM.now();
    var rows = $("segments-rows");
    rows.replaceChildren();
    var chart = $("segments-chart");
    var empty = !body.model_version || body.segments.length === 0;
    $("segments-card").dataset.state = empty ? "empty" : "ready";
    if (!body.model_version) {
      message($("segments-empty"), "No model yet: customers get a segment once a model is "
        + "trained and published. Orders are still being counted.");
    } else if (body.segments.length === 0) {
      message($("segments-empty"), "No customers have a segment yet.");
    } else {
      message($("segments-empty"), null);
    }
    $("segments-table").hidden = empty;
    $("segments-note").hidden = empty;
    chart.hidden = empty;
    if (empty) return;

    body.segments.forEach(function (segment) {
      rows.appendChild(el("tr", {
        "data-segment": segment.name, "data-customers": String(segment.customers),
      }, [
        el("td", {}, [segmentBadge(segment.name)]),
        el("td", { className: "num segment-customers", text: RFM.count(segment.customers) }),
        el("td", { className: "num", text: RFM.percent(segment.customer_share) }),
        el("td", { className: "num", text: RFM.percent(segment.revenue_share) }),
        el("td", { className: "num", text: RFM.days(segment.recency_days.median) }),
        el("td", { className: "num", text: RFM.orders(segment.frequency.median) }),
        el("td", { className: "num", text: RFM.money(segment.monetary.median) }),
      ]));
      var action = segment.action;
      if (action) rows.lastChild.title = action;
    });

    // Largest at the top of the bars.
    var bySize = body.segments.slice().sort(function (a, b) { return a.customers - b.customers; });
    Plotly.react(chart, [{
      type: "bar", orientation: "h",
      x: bySize.map(function (s) { return s.customers; }),
      y: bySize.map(function (s) { return RFM.label(s.name); }),
      marker: { color: bySize.map(function (s) { return RFM.colour(s.name); }) },
      text: bySize.map(function (s) { return RFM.count(s.customers); }),
      textposition: "auto",
      customdata: bySize.map(function (s) {
        return [RFM.percent(s.customer_share), RFM.percent(s.revenue_share), s.action || ""];
      }),
      hovertemplate: "<b>%{y}</b><br>%{x:,} customers (%{customdata[0]})<br>"
        + "%{customdata[1]} of revenue<br><i>%{customdata[2]}</i><extra></extra>",
    }], layout({
      height: Math.max(220, 34 * bySize.length + 40),
      margin: { l: 150, r: 20, t: 10, b: 30 },
      xaxis: { gridcolor: "#e6e9ef", zeroline: false, tickformat: ",d" },
      yaxis: { automargin: true },
      bargap: 0.25,
    }), PLOT_CONFIG);
  }

  function loadSegments() {
    segmentsLoaded = RFM.get("/v1/segments").then(showSegments, function (error) {
      $("segments-card").dataset.state = "error";
      $("segments-note").hidden = true;
      message($("segments-empty"), failure("the segments", error), "error");
    });
    return segmentsLoaded;
  }

  // ---- Segment sizes per day -------------------------------------------------------------

  function showDaily(body) {
    var chart = $("daily-chart");
    var days = body.days || [];
    if (days.length === 0) {
      chart.hidden = true;
      message($("daily-empty"), "No days recorded yet: sizes per day appear once customers "
        + "have segments.");
      return;
    }
    chart.hidden = false;
    message($("daily-empty"), null);
    var names = RFM.segmentOrder();
    days.forEach(function (d) {
      Object.keys(d.segments).forEach(function (name) {
        if (names.indexOf(name) < 0) names.push(name);
      });
    });
    var dates = days.map(function (d) { return d.date; });
    var traces = names.map(function (name) {
      return {
        type: "scatter", mode: days.length > 1 ? "lines" : "markers", stackgroup: "sizes",
        name: RFM.label(name), x: dates,
        y: days.map(function (d) { return d.segments[name] || 0; }),
        line: { color: RFM.colour(name), width: 1 },
        hovertemplate: "%{y:,} customers<extra>" + RFM.label(name) + "</extra>",
      };
    });
    Plotly.react(chart, traces, layout({
      height: 320, margin: { l: 60, r: 20, t: 10, b: 40 }, hovermode: "x unified",
      xaxis: { type: "date", gridcolor: "#eef0f4" },
      yaxis: { title: { text: "customers" }, gridcolor: "#e6e9ef", rangemode: "tozero" },
      legend: { orientation: "h", y: -0.2 },
    }), PLOT_CONFIG);
    $("flows-since").min = $("flows-until").min = dates[0];
    $("flows-since").max = $("flows-until").max = dates[dates.length - 1];
  }

  function loadDaily() {
    return RFM.get("/v1/segments/daily").then(showDaily, function (error) {
      $("daily-chart").hidden = true;
      message($("daily-empty"), failure("the sizes per day", error), "error");
    });
  }

  // ---- Flows between segments -----------------------------------------------------------

  function showFlows(body) {
    var chart = $("flows-chart");
    var reason = $("flows-reason").value;
    var flows = (body.flows || []).filter(function (f) {
      return f.customers > 0 && (!reason || f.reason === reason);
    });
    var span;
    if (body.since && body.since === body.until) span = "on " + RFM.date(body.since);
    else if (body.since && body.until) {
      span = "between " + RFM.date(body.since) + " and " + RFM.date(body.until);
    } else if (body.since) span = "since " + RFM.date(body.since);
    else if (body.until) span = "until " + RFM.date(body.until);
    else span = "since the stream began";
    if (flows.length === 0) {
      chart.hidden = true;
      $("flows-summary").textContent = "";
      message($("flows-empty"), "No customer changed segment " + span
        + (reason ? " because of " + $("flows-reason").selectedOptions[0].text : "") + ".");
      return;
    }
    chart.hidden = false;
    message($("flows-empty"), null);

    // Left column: where customers came from; right column: where they went.
    var left = [], right = [];
    flows.forEach(function (f) {
      var from = f.from_segment === null ? "" : f.from_segment;
      if (left.indexOf(from) < 0) left.push(from);
      if (right.indexOf(f.to_segment) < 0) right.push(f.to_segment);
    });
    var ranked = RFM.segmentOrder();
    function rank(name) { var i = ranked.indexOf(name); return i < 0 ? 99 : i; }
    left.sort(function (a, b) { return rank(a) - rank(b); });
    right.sort(function (a, b) { return rank(a) - rank(b); });
    var totals = {};
    flows.forEach(function (f) {
      var k = (f.from_segment || "") + ">" + f.to_segment;
      totals[k] = (totals[k] || 0) + f.customers;
    });
    var source = [], target = [], value = [], colours = [], hover = [];
    Object.keys(totals).forEach(function (k) {
      var parts = k.split(">");
      source.push(left.indexOf(parts[0]));
      target.push(left.length + right.indexOf(parts[1]));
      value.push(totals[k]);
      colours.push(RFM.colour(parts[1]) + "66");
      hover.push(RFM.label(parts[0] || null) + " → " + RFM.label(parts[1]));
    });
    function nodeName(name) { return RFM.label(name === "" ? null : name); }
    Plotly.react(chart, [{
      type: "sankey", arrangement: "snap", valueformat: ",d", valuesuffix: " customers",
      node: {
        label: left.map(nodeName).concat(right.map(nodeName)),
        color: left.map(function (n) { return n === "" ? "#9aa5b5" : RFM.colour(n); })
          .concat(right.map(RFM.colour)),
        pad: 14, thickness: 16, line: { width: 0 },
        hovertemplate: "%{label}: %{value:,} customers<extra></extra>",
      },
      link: { source: source, target: target, value: value, color: colours,
        customdata: hover, hovertemplate: "%{customdata}: %{value:,} customers<extra></extra>" },
    }], layout({ height: Math.max(360, 30 * Math.max(left.length, right.length)),
      margin: { l: 10, r: 10, t: 34, b: 10 },
      annotations: [
        { x: 0, y: 1.0, yshift: 26, xref: "paper", yref: "paper", showarrow: false,
          text: "before", font: { color: "#6b778a" }, xanchor: "left" },
        { x: 1, y: 1.0, yshift: 26, xref: "paper", yref: "paper", showarrow: false,
          text: "after", font: { color: "#6b778a" }, xanchor: "right" },
      ] }), PLOT_CONFIG);

    var byReason = {};
    var moves = 0;
    flows.forEach(function (f) {
      byReason[f.reason] = (byReason[f.reason] || 0) + f.customers;
      moves += f.customers;
    });
    var parts = Object.keys(byReason).map(function (r) {
      return RFM.count(byReason[r]) + " " + RFM.reason(r);
    });
    $("flows-summary").textContent = RFM.count(moves) + " moves " + span + " (" +
      parts.join(", ") + "). A first purchase is a new customer's first segment.";
  }

  function loadFlows() {
    var params = { since: $("flows-since").value, until: $("flows-until").value };
    $("flows-card").dataset.state = "loading";
    return RFM.get("/v1/flows", params).then(function (body) {
      showFlows(body);
      $("flows-card").dataset.state = "ready";
    }, function (error) {
      $("flows-chart").hidden = true;
      $("flows-card").dataset.state = "error";
      message($("flows-empty"), failure("the moves", error), "error");
    });
  }

  // ---- Live feed of changes -------------------------------------------------------------

  var refreshSoon = null;

  function addChange(change) {
    var feed = $("feed");
    $("feed-empty").hidden = true;
    var lookup = el("button", { type: "button", className: "link",
      text: "Customer " + change.customer_id });
    lookup.addEventListener("click", function () {
      lookUp(change.customer_id);
      $("lookup-card").scrollIntoView({ behavior: "smooth", block: "nearest" });
    });
    var why = RFM.reason(change.reason);
    var driver = RFM.driver(change.driver);
    if (driver && change.reason === "order") why += " (" + driver + ")";
    var item = el("li", {
      className: "change", "data-customer": change.customer_id,
      "data-segment": change.segment, "data-previous": change.previous_segment || "",
    }, [
      el("div", { className: "change-top" }, [
        lookup,
        el("time", { text: RFM.now(), title: "Happened " + RFM.moment(change.occurred_at) }),
      ]),
      el("div", { className: "change-move" }, [
        segmentBadge(change.previous_segment, "from"),
        el("span", { className: "arrow", text: "→" }),
        segmentBadge(change.segment, "to"),
      ]),
      el("div", { className: "change-why", text: why + " · " + RFM.date(change.occurred_at) }),
    ]);
    feed.insertBefore(item, feed.firstChild);
    while (feed.children.length > FEED_MAX) feed.removeChild(feed.lastChild);
    // Sizes follow the changes, at most every few seconds.
    if (!refreshSoon) {
      refreshSoon = setTimeout(function () { refreshSoon = null; loadSegments(); }, 3000);
    }
  }

  function connectFeed() {
    var state = $("feed-state");
    function show(name, text) { state.dataset.state = name; state.textContent = text; }
    if (!window.EventSource) { show("closed", "not supported by this browser"); return; }
    var source = new EventSource(RFM.streamUrl("/v1/changes/stream"));
    source.onopen = function () { show("open", "live"); };
    source.onerror = function () {
      // EventSource tries again by itself; CLOSED means it gave up (e.g. 401).
      if (source.readyState === EventSource.CLOSED) {
        show("closed", "disconnected");
        setTimeout(connectFeed, 5000);
      } else {
        show("connecting", "reconnecting…");
      }
    };
    source.addEventListener("change", function (event) {
      try { addChange(JSON.parse(event.data)); } catch (error) {
        console.warn("a change the page could not read", error);
      }
    });
  }

  // ---- Customer lookup ------------------------------------------------------------------

  function lookUp(id) {
    $("lookup-id").value = id;
    var box = $("lookup-message");
    var card = $("lookup-card");
    card.dataset.state = "loading";
    message(box, "Looking up customer " + id + "…");
    var path = "/v1/customers/" + encodeURIComponent(id);
    return Promise.all([RFM.get(path), RFM.get(path + "/history", { limit: 20 })]).then(
      function (answers) { showCustomer(answers[0], answers[1]); card.dataset.state = "ready"; },
      function (error) {
        $("lookup-result").hidden = true;
        card.dataset.state = error.status === 404 ? "not-found" : "error";
        if (error.status === 404) message(box, "No customer with id " + id + ".");
        else message(box, failure("the customer", error), "error");
      }
    );
  }

  function showCustomer(profile, history) {
    message($("lookup-message"), null);
    $("lookup-result").hidden = false;
    $("lookup-result").dataset.customer = profile.customer_id;
    var badge = $("lookup-segment");
    badge.textContent = profile.segment ? profile.label || RFM.label(profile.segment)
      : "No segment yet";
    badge.dataset.segment = profile.segment || "";
    badge.style.setProperty("--segment", profile.segment ? RFM.colour(profile.segment)
      : "#9aa5b5");
    $("lookup-since").textContent = profile.segment_since
      ? "since " + RFM.date(profile.segment_since) : "";
    $("lookup-action").textContent = profile.action || "";
    $("lookup-action").hidden = !profile.action;
    $("lookup-recency").textContent = RFM.days(profile.recency_days);
    $("lookup-frequency").textContent = RFM.orders(profile.frequency);
    $("lookup-monetary").textContent = RFM.money(profile.monetary);
    $("lookup-country").textContent = profile.country || "–";
    $("lookup-first").textContent = RFM.date(profile.first_order);
    $("lookup-last").textContent = RFM.date(profile.last_order);

    var list = $("lookup-history");
    list.replaceChildren();
    var changes = history.changes || [];
    $("lookup-history-empty").hidden = changes.length > 0;
    changes.forEach(function (change) {
      list.appendChild(el("li", { "data-segment": change.segment }, [
        el("time", { text: RFM.date(change.occurred_at) }),
        el("div", { className: "change-move" }, [
          segmentBadge(change.previous_segment, "from"),
          el("span", { className: "arrow", text: "→" }),
          segmentBadge(change.segment, "to"),
        ]),
        el("span", { className: "change-why", text: RFM.reason(change.reason) }),
      ]));
    });
  }

  // ---- The stream's pace ----------------------------------------------------------------

  function showStream(body) {
    $("kpi-clock").textContent = RFM.date(body.clock);
    $("kpi-clock-time").textContent = body.clock ? RFM.time(body.clock) : "no orders yet";
    $("kpi-events").textContent = RFM.count(body.events_applied);
    $("kpi-rate").textContent = body.events_per_s === null ? ""
      : RFM.count(Math.round(body.events_per_s * 10) / 10) + " per second";
    $("kpi-lag").textContent = body.lag === null ? "unknown" : RFM.count(body.lag);
    $("kpi-lag-note").textContent = body.lag === null ? "order stream unreachable"
      : body.lag === 0 ? "up to date" : body.lag === 1 ? "order" : "orders";
    var workers = Object.keys(body.workers || {}).length;
    var health = $("stream-health");
    var text;
    if (body.lag === null) { health.dataset.state = "warn"; text = "Order stream unreachable"; }
    else if (workers === 0) { health.dataset.state = "warn"; text = "No worker running"; }
    else if (body.lag > 1000) { health.dataset.state = "busy"; text = "Catching up"; }
    else { health.dataset.state = "ok"; text = "Live"; }
    $("stream-health-text").textContent = text + " · " + workers
      + (workers === 1 ? " worker" : " workers");
  }

  function pollStream() {
    RFM.get("/v1/stream").then(showStream, function (error) {
      $("stream-health").dataset.state = "down";
      $("stream-health-text").textContent = error.status === 0 ? "Service unreachable"
        : error.title;
    }).then(function () { setTimeout(pollStream, STREAM_EVERY_MS); });
  }

  // ---- Start ----------------------------------------------------------------------------

  function start() {
    if (!window.Plotly) {
      var box = $("page-error");
      box.hidden = false;
      box.textContent = "The charts library did not load; the figures below are still live.";
      window.Plotly = { react: function () {} };
    }
    $("flows-form").addEventListener("submit", function (event) {
      event.preventDefault();
      loadFlows();
    });
    $("flows-reason").addEventListener("change", loadFlows);
    $("lookup-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var id = $("lookup-id").value.trim();
      if (id) lookUp(id);
    });
    connectFeed();
    pollStream();
    // Labels first: the other charts name segments by them.
    loadSegments().then(function () { return Promise.all([loadDaily(), loadFlows()]); });
    setInterval(loadSegments, SEGMENTS_EVERY_MS);
    setInterval(loadDaily, 60000);
    document.body.dataset.ready = "true";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})(window.RFM);
