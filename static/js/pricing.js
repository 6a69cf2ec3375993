/* Tollgate pricing calculator: live quotes from POST /api/v1/pricing/quote as you type.
 *
 * The page works without this file (the form is a GET that the server prices). With it,
 * each change asks the same quote API that integrations use, debounced, and redraws the
 * table the server drew. Amounts stay strings end to end: the API rounds them, this file
 * only groups digits, so nothing here does arithmetic on money. Formatting mirrors
 * billing/templatetags/billing_tags.py and billing/pricing_views.py (keep them in step).
 */
(function () {
  "use strict";

  var dataElement = document.getElementById("pricing-data");
  var form = document.getElementById("calculator-form");
  if (!dataElement || !form || !window.fetch) {
    return;
  }
  var data = JSON.parse(dataElement.textContent);
  var planSelect = document.getElementById("calculator-plan");
  var quoteBox = document.getElementById("quote");
  var linesBody = document.getElementById("quote-lines");
  var subtotalCell = document.getElementById("quote-subtotal");
  var totalCell = document.getElementById("quote-total");
  var errorBox = document.getElementById("quote-error");
  var busy = document.getElementById("quote-busy");
  var noMeters = document.getElementById("calculator-no-meters");
  var TIMES = "\u00d7";
  var DEBOUNCE_MS = 250;

  // --- Formatting (strings in, strings out) -------------------------------------------
  function parts(text) {
    text = String(text);
    var negative = text.charAt(0) === "-";
    var split = (negative ? text.slice(1) : text).split(".");
    return { negative: negative, integer: split[0] || "0", fraction: split[1] || "" };
  }

  function group(integer) {
    return integer.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  function isZero(text) {
    return /^-?[0.]*$/.test(String(text));
  }

  function formatQuantity(text) {
    if (text === null || text === undefined || text === "") {
      return "";
    }
    var p = parts(text);
    var fraction = p.fraction.replace(/0+$/, "");
    var number = group(p.integer) + (fraction ? "." + fraction : "");
    return (p.negative && !isZero(text) ? "-" : "") + number;
  }

  // `exact` keeps every significant decimal of an unrounded amount ("$0.0004").
  function formatAmount(text, currency, exact) {
    var digits = currency in data.minor_units ? data.minor_units[currency] : 2;
    var p = parts(text);
    var fraction = exact ? p.fraction.replace(/0+$/, "") : p.fraction;
    while (fraction.length < digits) {
      fraction += "0";
    }
    var number = group(p.integer) + (fraction ? "." + fraction : "");
    var sign = p.negative && !isZero(text) ? "-" : "";
    var symbol = data.symbols[currency];
    return symbol ? sign + symbol + number : sign + number + " " + currency;
  }

  // Same words as pricing_views._tier_label: bands count billable units.
  function tierLabel(tier, currency) {
    var band = "";
    if (tier.up_to !== null) {
      band = isZero(tier.from)
        ? "Up to " + formatQuantity(tier.up_to)
        : formatQuantity(tier.from) + " to " + formatQuantity(tier.up_to);
    } else if (!isZero(tier.from)) {
      band = "Above " + formatQuantity(tier.from);
    }
    var detail = isZero(tier.unit_amount)
      ? formatQuantity(tier.quantity) + " billable"
      : formatQuantity(tier.quantity) + " " + TIMES + " " + formatAmount(tier.unit_amount, currency, true);
    if (!isZero(tier.flat_amount)) {
      detail += " + flat fee";
    }
    return band ? band + ": " + detail : detail;
  }

  // --- Drawing --------------------------------------------------------------------------
  function row(className, cells) {
    var tr = document.createElement("tr");
    tr.className = className;
    cells.forEach(function (cell) {
      var td = document.createElement("td");
      td.textContent = cell.text;
      if (cell.numeric) {
        td.className = "numeric";
      }
      if (cell.muted) {
        td.className = "muted";
      }
      if (cell.colspan) {
        td.colSpan = cell.colspan;
      }
      tr.appendChild(td);
    });
    return tr;
  }

  function lineRows(line, currency, plan) {
    var rows = [
      row("quote-line quote-line-" + line.kind, [
        { text: line.description },
        { text: line.meter ? formatQuantity(line.quantity) : "", numeric: true },
        { text: formatAmount(line.amount, currency), numeric: true },
      ]),
    ];
    if (line.billable_quantity === undefined || line.billable_quantity === null) {
      return rows;
    }
    var free = (plan.free_units || {})[line.meter] || "0";
    var allowance = Number(line.quantity) < Number(free) ? line.quantity : free;
    if (!isZero(allowance)) {
      rows.push(row("quote-tier", [{ text: "Free allowance: " + formatQuantity(allowance), colspan: 2 }, { text: "", numeric: true }]));
    }
    (line.tiers || []).forEach(function (tier) {
      rows.push(
        row("quote-tier", [
          { text: tierLabel(tier, currency), colspan: 2 },
          { text: formatAmount(tier.amount, currency, true), numeric: true },
        ])
      );
    });
    if (line.adjusted_by) {
      rows.push(
        row("quote-tier", [
          { text: "The charge's " + line.adjusted_by + " applies", colspan: 2 },
          { text: formatAmount(line.amount, currency), numeric: true },
        ])
      );
    }
    return rows;
  }

  function draw(quote, plan) {
    var fragment = document.createDocumentFragment();
    quote.lines.forEach(function (line) {
      lineRows(line, quote.currency, plan).forEach(function (tr) {
        fragment.appendChild(tr);
      });
    });
    if (!quote.lines.length) {
      fragment.appendChild(row("quote-line", [{ text: "Nothing to pay.", colspan: 3, muted: true }]));
    }
    linesBody.replaceChildren(fragment);
    subtotalCell.textContent = formatAmount(quote.subtotal, quote.currency);
    subtotalCell.setAttribute("data-amount", quote.subtotal);
    totalCell.textContent = formatAmount(quote.total, quote.currency);
    totalCell.setAttribute("data-amount", quote.total);
    document.getElementById("quote-plan").textContent = plan.name;
    document.getElementById("quote-interval").textContent = plan.interval;
    quoteBox.hidden = false;
    errorBox.hidden = true;
  }

  // --- Field errors ---------------------------------------------------------------------
  function fieldOf(input) {
    return input.closest(".field");
  }

  function clearErrors() {
    form.querySelectorAll("[data-live-error]").forEach(function (element) {
      element.remove();
    });
    form.querySelectorAll(".field-invalid").forEach(function (field) {
      field.classList.remove("field-invalid");
    });
    form.querySelectorAll("[aria-invalid]").forEach(function (input) {
      input.removeAttribute("aria-invalid");
    });
    form.querySelectorAll(".field > .errors").forEach(function (list) {
      list.remove(); // the server's errors from a submitted form: stale once editing starts
    });
  }

  function fieldError(input, message) {
    var field = fieldOf(input);
    var error = document.createElement("p");
    error.className = "errors";
    error.setAttribute("data-live-error", "");
    error.id = input.id + "_live_error";
    error.textContent = message;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", error.id);
    field.classList.add("field-invalid");
    field.appendChild(error);
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
    busy.hidden = true;
  }

  // --- Asking the API -------------------------------------------------------------------
  var timer = null;
  var controller = null;
  var sequence = 0;

  // By name attribute (form.elements[name] would also find properties such as "length").
  function meterInput(code) {
    return form.querySelector('[name="' + CSS.escape(code) + '"]');
  }

  function selectedPlan() {
    return data.plans[planSelect.value];
  }

  function showPlanFields() {
    var plan = selectedPlan();
    form.querySelectorAll("[data-meter-field]").forEach(function (wrapper) {
      wrapper.hidden = plan.meters.indexOf(wrapper.getAttribute("data-meter-field")) < 0;
    });
    noMeters.hidden = plan.meters.length > 0;
  }

  function request() {
    var plan = selectedPlan();
    var usage = {};
    var bad = [];
    plan.meters.forEach(function (code) {
      var input = meterInput(code);
      if (!input) {
        return;
      }
      if (input.validity && input.validity.badInput) {
        bad.push(input);
      } else if (input.value.trim() !== "") {
        usage[code] = input.value.trim();
      }
    });
    return { plan: planSelect.value, usage: usage, bad: bad };
  }

  function shareableUrl(body) {
    var query = new URLSearchParams({ plan: body.plan });
    Object.keys(body.usage).forEach(function (code) {
      query.set(code, body.usage[code]);
    });
    return window.location.pathname + "?" + query.toString() + "#calculator";
  }

  function update() {
    var body = request();
    var plan = selectedPlan();
    clearErrors();
    if (body.bad.length) {
      body.bad.forEach(function (input) {
        fieldError(input, "Enter a number.");
      });
      showError("Fix the highlighted fields to see a quote.");
      return;
    }
    if (controller) {
      controller.abort();
    }
    controller = window.AbortController ? new AbortController() : null;
    var mine = ++sequence;
    busy.hidden = false;
    fetch(data.quote_url, {
      method: "POST",
      // The quote API is public and takes no cookies, so no CSRF token is involved.
      credentials: "omit",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ plan: body.plan, usage: body.usage }),
      signal: controller ? controller.signal : undefined,
    })
      .then(function (response) {
        return response.json().then(function (json) {
          return { ok: response.ok, json: json };
        });
      })
      .then(function (result) {
        if (mine !== sequence) {
          return; // a newer request is on its way
        }
        busy.hidden = true;
        if (result.ok) {
          draw(result.json, plan);
          window.history.replaceState(null, "", shareableUrl(body));
          return;
        }
        var problems = result.json.errors || [];
        problems.forEach(function (problem) {
          var code = String(problem.field || "").replace(/^usage\./, "");
          if (meterInput(code)) {
            fieldError(meterInput(code), problem.detail);
          }
        });
        showError(problems.length ? "Fix the highlighted fields to see a quote." : result.json.detail || "The quote failed.");
      })
      .catch(function (error) {
        if (error.name !== "AbortError" && mine === sequence) {
          showError("The calculator could not be reached. Try again in a moment.");
        }
      });
  }

  function schedule() {
    window.clearTimeout(timer);
    timer = window.setTimeout(update, DEBOUNCE_MS);
  }

  // --- Wiring -----------------------------------------------------------------------------
  document.getElementById("calculator-submit").hidden = true; // quotes follow the typing
  showPlanFields();

  form.addEventListener("input", schedule);
  planSelect.addEventListener("change", function () {
    showPlanFields();
    window.clearTimeout(timer);
    update();
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    window.clearTimeout(timer);
    update();
  });

  // "Estimate your bill" on a plan card: pick that plan here instead of reloading.
  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-calculator-plan]");
    if (!link) {
      return;
    }
    event.preventDefault();
    planSelect.value = link.getAttribute("data-calculator-plan");
    showPlanFields();
    update();
    document.getElementById("calculator").scrollIntoView({ behavior: "smooth" });
    var first = form.querySelector("[data-meter-field]:not([hidden]) input");
    (first || planSelect).focus({ preventScroll: true });
  });

  // Back/forward may restore typed values the server-drawn quote does not reflect.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      update();
    }
  });
})();
