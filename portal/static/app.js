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
  // The order answer form: typing a delivery chooses "Change", choosing a reason chooses "Reject", and the
  // delivery rows beyond the first three appear one at a time (without scripts they are all shown).
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
    const more = fieldset.querySelector(".add-delivery");
    const hiddenRows = () => fieldset.querySelectorAll("tr.more");
    if (more && hiddenRows().length) {
      more.hidden = false;
      more.addEventListener("click", () => {
        const next = hiddenRows()[0];
        next.classList.remove("more");
        next.querySelector("input")?.focus();
        more.hidden = hiddenRows().length === 0;
      });
    }
  }
});
