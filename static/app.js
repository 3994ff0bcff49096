// quizbench login page: posts the form to the JSON API, then goes to the
// dashboard. The session cookie is HttpOnly: scripts never see it.
"use strict";
(function () {
  const form = document.getElementById("login");
  if (!form) return;
  const error = document.getElementById("error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = JSON.stringify({
      username: form.username.value,
      password: form.password.value,
    });
    try {
      const res = await fetch("/api/v1/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
        credentials: "same-origin",
      });
      if (res.ok) {
        window.location.assign("/dashboard");
        return;
      }
      const data = await res.json().catch(() => null);
      error.textContent = (data && data.error && data.error.message) || "Login failed";
    } catch (e) {
      error.textContent = "The server could not be reached";
    }
  });
})();
