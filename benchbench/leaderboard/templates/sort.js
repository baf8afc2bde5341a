(function () {
  "use strict";
  function sortable(table) {
    var headers = table.tHead.rows[0].cells;
    function value(row, index, type) {
      var raw = row.cells[index].getAttribute("data-sort");
      if (type !== "num") { return raw.toLowerCase(); }
      return raw === "" ? null : parseFloat(raw);
    }
    function sortBy(index) {
      var th = headers[index], type = th.getAttribute("data-type");
      var current = th.getAttribute("aria-sort");
      var ascending = current ? current !== "ascending" : th.getAttribute("data-first") === "asc";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.forEach(function (row, i) { row._order = i; });
      rows.sort(function (a, b) {
        var x = value(a, index, type), y = value(b, index, type);
        if (x === y) { return a._order - b._order; }
        if (x === null || x === "") { return 1; }   /* missing values last, either way */
        if (y === null || y === "") { return -1; }
        var cmp = x < y ? -1 : 1;
        return ascending ? cmp : -cmp;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      for (var j = 0; j < headers.length; j++) { headers[j].removeAttribute("aria-sort"); }
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    }
    for (var i = 0; i < headers.length; i++) {
      headers[i].addEventListener("click", sortBy.bind(null, i));
    }
  }
  var tables = document.querySelectorAll("table.leaderboard");
  for (var t = 0; t < tables.length; t++) { sortable(tables[t]); }
}());
