// quizbench pages: progressive enhancement only. Every form works without
// this script; with it, a form that was sent is not sent again by a second
// click while the next page loads (without it, the quiz form's idempotency
// key makes the server store a double submit once).
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.sent === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "1";
  for (const button of form.querySelectorAll("button[type=submit]")) {
    button.setAttribute("aria-disabled", "true");
  }
});
// A page shown again from the back/forward cache can be sent again.
window.addEventListener("pageshow", () => {
  for (const form of document.querySelectorAll("form[data-sent]")) {
    delete form.dataset.sent;
    for (const button of form.querySelectorAll("button[type=submit]")) {
      button.removeAttribute("aria-disabled");
    }
  }
});
