"""The station's sync with central, one module a direction, each working while the others wait.

- ``clips``: clips up, over tus, deleted here only once central said "verified";
- ``events``: the event outbox up, resent from central's acknowledged seq;
- ``changes``: central's changes down, applied to the mirror with their cursor;
- ``errors``: central's error answers as transient or permanent transfer errors, for all three.
"""
