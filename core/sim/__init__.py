"""The simulator behind `omnireach simulate`: the cadence engine on a virtual clock, no Temporal.

driver.py runs `core.engine.advance` the way the `contact-cadence` workflow does (same send-time rules,
same trace); calls.py mirrors the `call-task` child; engagement.py is the editable model of how contacts
and agents behave; population.py makes the contacts; simulation.py ties them together and counts;
metrics.py holds the counters and the Erlang C staffing formula.
"""
