// Words and numbers as a marketer reads them: segment labels, money, days, dates.
"use strict";

window.RFM = window.RFM || {};

(function (RFM) {
  // Labels the API gave (GET /v1/segments); other names are shown with spaces for "_".
  var labels = {};
  var order = [];

  // One colour per segment name, the same in every chart and badge of the page.
  var PALETTE = {
    champions: "#1b7f4c",
    loyal: "#2f9e6b",
    potential_loyalist: "#69b86f",
    new: "#3a86c8",
    promising: "#6aa8dc",
    needs_attention: "#e0a526",
    about_to_sleep: "#d98c3f",
    at_risk: "#d4613e",
    cant_lose_them: "#b8322f",
    hibernating: "#8c7b9c",
    lost: "#7d7d7d",
  };
  var SPARE = ["#5b6fd6", "#c35aa3", "#3fa7a0", "#a67c3d", "#6b8e23", "#b15f7a"];

  var money = new Intl.NumberFormat("en-GB", {
    style: "currency", currency: "GBP", maximumFractionDigits: 0,
  });
  var moneyExact = new Intl.NumberFormat("en-GB", { style: "currency", currency: "GBP" });
  var count = new Intl.NumberFormat("en-GB");
  var percent = new Intl.NumberFormat("en-GB", {
    style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1,
  });
  var day = new Intl.DateTimeFormat("en-GB", {
    day: "numeric", month: "short", year: "numeric", timeZone: "UTC",
  });
  var moment = new Intl.DateTimeFormat("en-GB", {
    day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
    timeZone: "UTC",
  });
  var clockTime = new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });

  RFM.learnLabels = function (segments) {
    order = [];
    segments.forEach(function (segment) {
      labels[segment.name] = segment.label;
      order.push(segment.name);
    });
  };

  RFM.label = function (name) {
    if (name === null || name === undefined) return "First purchase";
    if (labels[name]) return labels[name];
    var words = String(name).replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  };

  RFM.segmentOrder = function () { return order.slice(); };

  RFM.colour = function (name) {
    if (PALETTE[name]) return PALETTE[name];
    var hash = 0;
    String(name).split("").forEach(function (ch) { hash = (hash * 31 + ch.charCodeAt(0)) | 0; });
    return SPARE[Math.abs(hash) % SPARE.length];
  };

  RFM.money = function (value) {
    if (value === null || value === undefined) return "–";
    return Math.abs(value) >= 100 ? money.format(value) : moneyExact.format(value);
  };

  RFM.count = function (value) {
    return value === null || value === undefined ? "–" : count.format(value);
  };

  RFM.percent = function (share) {
    return share === null || share === undefined ? "–" : percent.format(share);
  };

  RFM.days = function (value) {
    if (value === null || value === undefined) return "–";
    var n = Math.round(value);
    if (n <= 0) return "today";
    if (n === 1) return "yesterday";
    if (n < 60) return n + " days ago";
    if (n < 730) return Math.round(n / 30.4) + " months ago";
    return (n / 365).toFixed(1) + " years ago";
  };

  RFM.orders = function (value) {
    if (value === null || value === undefined) return "–";
    var n = Math.round(value * 10) / 10;
    return count.format(n) + (n === 1 ? " order" : " orders");
  };

  RFM.date = function (iso) {
    if (!iso) return "–";
    var when = new Date(iso.length === 10 ? iso + "T00:00:00Z" : iso);
    return isNaN(when) ? String(iso) : day.format(when);
  };

  RFM.moment = function (iso) {
    if (!iso) return "–";
    var when = new Date(iso);
    return isNaN(when) ? String(iso) : moment.format(when) + " UTC";
  };

  var timeOfDay = new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", timeZone: "UTC",
  });
  RFM.time = function (iso) {
    var when = new Date(iso);
    return isNaN(when) ? "" : timeOfDay.format(when) + " UTC";
  };

  RFM.now = function () { return clockTime.format(new Date()); };

  var REASONS = {
    order: "placed an order",
    recency: "no order for a while",
    retrain: "new model",
  };
  RFM.reason = function (reason) { return REASONS[reason] || reason; };

  // What moved a customer who placed an order (or returned one).
  var DRIVERS = {
    recency: "ordered again",
    frequency: "more orders",
    monetary: "amount spent",
  };
  RFM.driver = function (driver) { return driver ? DRIVERS[driver] || driver : null; };

  // The model version as people say it: the date it was trained.
  RFM.version = function (version) {
    if (!version) return "none yet";
    var match = /^(\d{4}-\d{2}-\d{2})T/.exec(version);
    return match ? "trained " + RFM.date(match[1]) : version;
  };
})(window.RFM);
