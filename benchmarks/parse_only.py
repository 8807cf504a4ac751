"""The floor ``benchmarks/forecast_latency.py`` measures the service against: a FastAPI endpoint that only
parses the same ``POST /v1/forecast`` body (the service's own request schema) and echoes part of it, served
by uvicorn with the settings ``seqcast serve`` uses (uvloop, httptools, no access log)."""

from __future__ import annotations

from fastapi import FastAPI

from service.schemas import ForecastRequest

app = FastAPI()


@app.post("/v1/forecast")
async def forecast(request: ForecastRequest) -> dict:
    history = request.history or []
    return {"model": request.model, "version": "0", "forecast": history[-request.horizon :]}
