// tokenops dashboard: progressive enhancement only; every page works without this file.
// - changing a filter applies it at once (the form is a plain GET, so filters stay in the URL);
// - quick ranges (7 / 30 / 90 days, month to date) fill the date inputs.
"use strict";

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function quickRange(form, days) {
  const now = new Date();
  const tomorrow = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
  const start = days === "mtd"
    ? new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1))
    : new Date(tomorrow.getTime() - Number(days) * 86400000);
  form.elements.start.value = isoDay(start);
  form.elements.end.value = isoDay(tomorrow);
  form.submit();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form.filters");
  if (!form) {
    return;
  }
  for (const select of form.querySelectorAll("select:not([disabled])")) {
    select.addEventListener("change", () => form.submit());
  }
  const quick = document.createElement("span");
  quick.className = "quick";
  for (const [label, days] of [["7d", "7"], ["30d", "30"], ["90d", "90"], ["MTD", "mtd"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.dataset.range = days;
    button.addEventListener("click", () => quickRange(form, days));
    quick.appendChild(button);
  }
  form.insertBefore(quick, form.querySelector("button[type=submit]"));
});
