"""Typed access to the app's context, for route signatures."""

from typing import Annotated

from fastapi import Depends, Request

from app.context import AppContext


async def _context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(_context)]
