"""Aggregator role: rebuild each country's summary file from its runs' summaries."""
