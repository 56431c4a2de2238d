// Relive: the "Copy" buttons next to a token or key shown once. Without JavaScript the field is
// still there to select and copy by hand; with it, the button appears and copies.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field || !navigator.clipboard) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    field.select();
    navigator.clipboard.writeText(field.value).then(function () { button.textContent = "Copied"; });
  });
});
