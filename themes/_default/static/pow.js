// Solves the ALTCHA-style proof-of-work challenge embedded in the report form, so that the
// form can be sent. Runs only on portals that turned the check on; no other host is reached.
(function () {
  "use strict";
  var box = document.getElementById("pow");
  if (!box || !window.crypto || !crypto.subtle) { return; }
  var challenge = JSON.parse(box.getAttribute("data-challenge"));
  var input = document.getElementById("altcha");
  var form = box.closest("form");
  var hex = function (buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  };
  var encoder = new TextEncoder();
  var solved = (async function () {
    var salt = challenge.salt.slice(-1) === "&" ? challenge.salt : challenge.salt + "&";
    for (var n = 0; n <= challenge.maxNumber; n++) {
      var digest = await crypto.subtle.digest("SHA-256", encoder.encode(salt + n));
      if (hex(digest) === challenge.challenge) {
        input.value = btoa(JSON.stringify({
          algorithm: challenge.algorithm, challenge: challenge.challenge, number: n,
          salt: challenge.salt, signature: challenge.signature
        }));
        return true;
      }
    }
    return false;
  })();
  form.addEventListener("submit", function (event) {
    if (input.value) { return; }
    event.preventDefault();
    solved.then(function () { form.submit(); });
  });
})();
