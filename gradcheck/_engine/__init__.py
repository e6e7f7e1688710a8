"""The check's engine, as stages with one job each: call the layer, measure both sides, judge
(one status ladder, :mod:`gradcheck._engine.ladder`), explain. Private to the package."""
