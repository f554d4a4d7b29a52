// Copy buttons for the setup panel. Progressive enhancement: the buttons are hidden until this
// file runs, and the values stay selectable text without it. A file, not an inline script:
// the Content-Security-Policy runs none.
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.connect-copy")) {
    const target = document.getElementById(button.dataset.copyTarget);
    if (!target) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const value = target.textContent.trim();
      try {
        await navigator.clipboard.writeText(value);
      } catch {
        // No clipboard permission (plain http, an old browser): select it for Ctrl+C.
        const range = document.createRange();
        range.selectNodeContents(target);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
      button.dataset.copied = value;
      button.textContent = "Copied";
    });
  }
});
