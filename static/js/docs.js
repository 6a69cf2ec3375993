/* API reference: search that filters operations as you type, a version switcher that
   navigates on change, and one language for every sample. The page works without this
   file: search submits ?q=, the switcher has a Go button, all samples are shown. Copy
   buttons are portal.js's (data-copy-target). */
(function () {
  "use strict";

  var LANGUAGE_KEY = "tollgate-docs-language";

  function words(text) {
    return text.toLowerCase().split(/\s+/).filter(Boolean);
  }

  function filterOperations(query) {
    var wanted = words(query);
    var shown = 0;
    var total = 0;
    document.querySelectorAll("[data-docs-op]").forEach(function (operation) {
      var haystack = operation.getAttribute("data-search") || "";
      var match = wanted.every(function (word) { return haystack.indexOf(word) !== -1; });
      operation.hidden = !match;
      total += 1;
      shown += match ? 1 : 0;
      var entry = document.querySelector('[data-docs-toc-op="' + operation.id + '"]');
      if (entry) {
        entry.hidden = !match;
      }
    });
    document.querySelectorAll("[data-docs-section]").forEach(function (section) {
      var visible = section.querySelector("[data-docs-op]:not([hidden])");
      section.hidden = !visible;
      var entry = document.querySelector('[data-docs-toc-section="' + section.id + '"]');
      if (entry) {
        entry.hidden = !visible;
      }
    });
    var none = document.querySelector("[data-docs-none]");
    if (none) {
      none.hidden = shown > 0 || total === 0;
    }
    var count = document.querySelector("[data-docs-count]");
    if (count) {
      count.textContent = wanted.length ? shown + " of " + total + " operations match." : "";
    }
  }

  function chooseLanguage(language) {
    document.querySelectorAll("[data-docs-samples]").forEach(function (box) {
      var available = box.querySelector('[data-docs-sample="' + language + '"]');
      var chosen = available ? language : box.querySelector("[data-docs-sample]").getAttribute("data-docs-sample");
      box.querySelectorAll("[data-docs-sample]").forEach(function (sample) {
        sample.hidden = sample.getAttribute("data-docs-sample") !== chosen;
      });
      box.querySelectorAll("[data-docs-tab]").forEach(function (tab) {
        tab.setAttribute("aria-selected", tab.getAttribute("data-docs-tab") === chosen ? "true" : "false");
      });
    });
    try {
      window.localStorage.setItem(LANGUAGE_KEY, language);
    } catch (error) {
      /* private mode: the choice lasts for this page only */
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-docs-no-js]").forEach(function (element) {
      element.hidden = true;
    });

    var search = document.querySelector("[data-docs-search]");
    if (search) {
      search.addEventListener("input", function () {
        filterOperations(search.value);
      });
      search.form.addEventListener("submit", function (event) {
        // The page already holds every operation when it was neither filtered on the server
        // nor cut at its cap; then there is nothing to ask the server for.
        var filtered = new URLSearchParams(window.location.search).get("q");
        if (!filtered && !search.form.hasAttribute("data-docs-capped")) {
          event.preventDefault();
          filterOperations(search.value);
        }
      });
    }

    var versions = document.querySelector("[data-docs-version]");
    if (versions) {
      versions.addEventListener("change", function () {
        var option = versions.options[versions.selectedIndex];
        window.location.assign(option.getAttribute("data-url") + window.location.hash);
      });
    }

    var tabs = document.querySelectorAll("[data-docs-tabs]");
    if (tabs.length) {
      tabs.forEach(function (bar) {
        bar.hidden = false;
      });
      document.addEventListener("click", function (event) {
        var tab = event.target.closest("[data-docs-tab]");
        if (tab) {
          chooseLanguage(tab.getAttribute("data-docs-tab"));
        }
      });
      var saved = null;
      try {
        saved = window.localStorage.getItem(LANGUAGE_KEY);
      } catch (error) {
        saved = null;
      }
      chooseLanguage(saved || "curl");
    }
  });
})();
