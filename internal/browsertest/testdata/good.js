"use strict";
console.log("good.js loaded");
console.info("information is not an error");
console.warn("a warning is not an error");
document.body.dataset.ready = "yes";
