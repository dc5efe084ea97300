"""create_app(settings): wiring only. Database, cache, blueprints, cookies, error pages, logs."""

from __future__ import annotations

import json
import logging
import sys

from flask import Flask, g, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from lti_tool.lti.errors import LaunchRefused
from lti_tool.services import Services
from lti_tool.settings import REPO_ROOT, Settings, load_settings
from lti_tool.web import DatabaseIntConverter, csrf

log = logging.getLogger("lti_tool")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("reason", "path", "issuer", "client_id", "status"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(settings: Settings) -> None:
    fmt = settings.log_format or ("json" if settings.is_production else "text")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("lti_tool")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def create_app(settings: Settings | None = None, services: Services | None = None) -> Flask:
    settings = settings or load_settings()
    settings.check()
    configure_logging(settings)
    services = services or Services(settings)

    app = Flask(
        __name__,
        template_folder=str(REPO_ROOT / "templates"),
        static_folder=None,
        instance_path=str(settings.instance_dir),
    )
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=None,
        # Inside an LMS iframe the session cookie is third-party: it must be SameSite=None;
        # Secure (and Partitioned, for browsers that partition third-party cookies).
        SESSION_COOKIE_SECURE=settings.uses_https,
        SESSION_COOKIE_SAMESITE="None" if settings.uses_https else "Lax",
        SESSION_COOKIE_PARTITIONED=settings.uses_https,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_NAME="lti_tool_session",
        PREFERRED_URL_SCHEME="https" if settings.uses_https else "http",
    )
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)
    app.extensions["lti_tool"] = services
    # Before any route is added: an id in a URL is a number the database can hold.
    app.url_map.converters["int"] = DatabaseIntConverter

    from lti_tool.lti.views import blueprint as lti_blueprint
    from lti_tool.web.api import blueprint as api_blueprint
    from lti_tool.web.assess import blueprint as assess_blueprint
    from lti_tool.web.assessment_admin import blueprint as assessment_admin_blueprint
    from lti_tool.web.assessment_stats import blueprint as assessment_stats_blueprint
    from lti_tool.web.badges import blueprint as badges_blueprint
    from lti_tool.web.catalog import blueprint as catalog_blueprint
    from lti_tool.web.course import blueprint as course_blueprint
    from lti_tool.web.evidence import blueprint as evidence_blueprint
    from lti_tool.web.grades import blueprint as grades_blueprint
    from lti_tool.web.pages import blueprint as pages_blueprint
    from lti_tool.web.progress import blueprint as progress_blueprint
    from lti_tool.web.signin import blueprint as signin_blueprint

    app.register_blueprint(lti_blueprint)
    app.register_blueprint(pages_blueprint)
    app.register_blueprint(catalog_blueprint)
    app.register_blueprint(course_blueprint)
    app.register_blueprint(progress_blueprint)
    app.register_blueprint(evidence_blueprint)
    app.register_blueprint(signin_blueprint)
    app.register_blueprint(api_blueprint)
    app.register_blueprint(assessment_stats_blueprint)
    app.register_blueprint(grades_blueprint)
    app.register_blueprint(badges_blueprint)
    app.register_blueprint(assess_blueprint)
    app.register_blueprint(assessment_admin_blueprint)
    csrf.init_app(app)
    if settings.demo:
        from lti_tool.demo_lms.views import blueprint as demo_blueprint

        app.register_blueprint(demo_blueprint)

    @app.context_processor
    def _globals() -> dict:
        return {"tool_name": settings.tool_name, "demo_mode": settings.demo}

    @app.after_request
    def _headers(response):
        # Pages must be embeddable by any LMS; everything else stays locked down.
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        return response

    @app.teardown_appcontext
    def _close_session(_exc) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    @app.errorhandler(LaunchRefused)
    def _launch_refused(exc: LaunchRefused):
        log.warning(
            "launch refused: %s",
            exc.message,
            extra={"reason": exc.reason, "path": request.path, "status": exc.status},
        )
        return (
            render_template(
                "error.html",
                title="This launch could not be accepted",
                message=exc.message,
                reason=exc.reason,
                status=exc.status,
                retry_url=exc.retry_url,
            ),
            exc.status,
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if request.path.startswith(("/api/", "/lti/jwks", "/.well-known/", "/health")):
            return {"error": exc.name, "message": exc.description}, exc.code
        return (
            render_template(
                "error.html", title=exc.name, message=exc.description, reason=None, status=exc.code
            ),
            exc.code,
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s", request.path)
        if request.path.startswith("/api/"):
            message = "The tool hit an unexpected error. It has been logged; please try again."
            return {"error": "Internal Server Error", "message": message}, 500
        return (
            render_template(
                "error.html",
                title="Something went wrong",
                message="The tool hit an unexpected error. It has been logged; please try again, "
                "and tell your administrator if it keeps happening.",
                reason=None,
                status=500,
            ),
            500,
        )

    return app
