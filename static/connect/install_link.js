// The install link selects itself on focus, so it copies in one go. A file, not an inline
// handler: the Content-Security-Policy runs no inline script.
document.addEventListener("DOMContentLoaded", () => {
  const field = document.getElementById("install-link");
  if (field) {
    field.addEventListener("focus", () => field.select());
  }
});
