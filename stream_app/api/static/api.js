// Talking to the API: the key (Bearer header; ?key= for the event stream) and its errors.
"use strict";

window.RFM = window.RFM || {};

(function (RFM) {
  var KEY = "rfm-api-key";

  function key() { return sessionStorage.getItem(KEY); }

  // An answer other than 2xx, with the problem details' title and detail when there are.
  function ApiError(status, title, detail) {
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.message = detail ? title + ": " + detail : title;
  }
  ApiError.prototype = Object.create(Error.prototype);
  RFM.ApiError = ApiError;

  function explain(status) {
    if (status === 401) return "The API key is missing or wrong; open the page as /?key=…";
    if (status === 503) return "The data store cannot be reached right now; retrying.";
    return "The API answered " + status + ".";
  }

  // GET a JSON body; reject with an ApiError (status 0 when the server cannot be reached).
  RFM.get = function (path, params) {
    var url = new URL(path, window.location.origin);
    Object.keys(params || {}).forEach(function (name) {
      if (params[name] !== null && params[name] !== undefined && params[name] !== "") {
        url.searchParams.set(name, params[name]);
      }
    });
    var headers = { Accept: "application/json" };
    if (key()) headers.Authorization = "Bearer " + key();
    return fetch(url, { headers: headers }).then(
      function (response) {
        if (response.ok) return response.json();
        return response.text().then(function (text) {
          var body = {};
          try { body = JSON.parse(text); } catch (ignored) { /* not problem details */ }
          throw new ApiError(response.status, body.title || explain(response.status),
            body.detail || "");
        });
      },
      function () {
        throw new ApiError(0, "The service cannot be reached", "check that rfm serve runs");
      }
    );
  };

  // The address of the changes stream: EventSource cannot set headers, so the key goes along.
  RFM.streamUrl = function (path) {
    var url = new URL(path, window.location.origin);
    if (key()) url.searchParams.set("key", key());
    return url.toString();
  };
})(window.RFM);
