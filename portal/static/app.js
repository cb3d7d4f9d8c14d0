// Small progressive enhancements; every page works without them.
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-autosubmit]")) {
    form.querySelector("select")?.addEventListener("change", () => form.submit());
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  // Rows of a form shown a few at a time: the button beside them (hidden without scripts, when every row shows)
  // reveals the next hidden row (tr.more) of its container ([data-rows]) and focuses its first field.
  for (const more of document.querySelectorAll("[data-rows] button.add-row")) {
    const scope = more.closest("[data-rows]");
    const hiddenRows = () => scope.querySelectorAll("tr.more");
    if (!hiddenRows().length) continue;
    more.hidden = false;
    more.addEventListener("click", () => {
      const next = hiddenRows()[0];
      next.classList.remove("more");
      next.querySelector("input")?.focus();
      more.hidden = hiddenRows().length === 0;
    });
  }
  // The order answer form: typing a delivery chooses "Change", choosing a reason chooses "Reject".
  for (const fieldset of document.querySelectorAll("fieldset.answer")) {
    const choose = (value) => {
      const radio = fieldset.querySelector(`input[type=radio][value="${value}"]`);
      if (radio) radio.checked = true;
    };
    for (const input of fieldset.querySelectorAll(".deliveries input")) {
      input.addEventListener("input", () => choose("change"));
    }
    fieldset.querySelector("select[name$='-reason']")?.addEventListener("change", (event) => {
      if (event.target.value) choose("reject");
    });
  }
});
