"""The reference of the launch benchmark: a minimal LTI 1.3 tool that does only what pylti1p3's
documentation and its Flask example show, and nothing more.

- the registration is read from a JSON file (ToolConfJsonFile), built anew on every request as
  the example does;
- launch data (nonces, state, launch bodies, the platform's keys) lives in a Flask-Caching cache
  (FlaskCacheDataStorage), with the platform's public keys cached as the README's "Cache for
  Public Key" section shows;
- login is FlaskOIDCLogin(...).enable_check_cookies().redirect(target_link_uri), as the example
  (pylti1p3next ships no template for the cookie check page: reference_templates/ has one);
- the launch is validated by FlaskMessageLaunch and answered with a small page (200);
- no database: nobody and nothing is recorded.

It is served by gunicorn (`gunicorn 'reference_app:create_app()'` from this folder) with these
environment variables, set by bench_launch.py:

    BENCH_REF_CONFIG   path of the JSON tool configuration
    BENCH_REF_CACHE    a Flask-Caching CACHE_TYPE: RedisCache (with BENCH_REF_REDIS_URL and
                       BENCH_REF_CACHE_PREFIX) or FileSystemCache (with BENCH_REF_CACHE_DIR).
                       The example's "simple" cache lives in one process; gunicorn runs several,
                       and a login and its launch may reach different ones, so the cache must be
                       shared, as the README recommends (memcache/redis).
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, render_template
from flask_caching import Cache
from pylti1p3.contrib.flask import (
    FlaskCacheDataStorage,
    FlaskMessageLaunch,
    FlaskOIDCLogin,
    FlaskRequest,
)
from pylti1p3.tool_config import ToolConfJsonFile


def create_app() -> Flask:
    # Templates from files, as the example: Jinja compiles each once per process.
    app = Flask(
        "pylti1p3-reference",
        template_folder=str(Path(__file__).resolve().parent / "reference_templates"),
    )
    config = {
        "CACHE_TYPE": os.environ.get("BENCH_REF_CACHE", "FileSystemCache"),
        "CACHE_DEFAULT_TIMEOUT": 600,
        "SECRET_KEY": os.environ.get("BENCH_REF_SECRET", "reference-secret"),
        "SESSION_COOKIE_NAME": "pylti1p3-flask-app-sessionid",
        "SESSION_COOKIE_HTTPONLY": True,
    }
    if config["CACHE_TYPE"] == "RedisCache":
        config["CACHE_REDIS_URL"] = os.environ["BENCH_REF_REDIS_URL"]
        config["CACHE_KEY_PREFIX"] = os.environ.get("BENCH_REF_CACHE_PREFIX", "bench-ref:")
    else:
        config["CACHE_DIR"] = os.environ["BENCH_REF_CACHE_DIR"]
        config["CACHE_THRESHOLD"] = 100_000
    app.config.from_mapping(config)
    cache = Cache(app)
    config_path = os.environ["BENCH_REF_CONFIG"]

    @app.route("/login/", methods=["GET", "POST"])
    def login():
        tool_conf = ToolConfJsonFile(config_path)
        launch_data_storage = FlaskCacheDataStorage(cache)
        flask_request = FlaskRequest()
        target_link_uri = flask_request.get_param("target_link_uri")
        if not target_link_uri:
            raise Exception('Missing "target_link_uri" param')
        oidc_login = FlaskOIDCLogin(
            flask_request, tool_conf, launch_data_storage=launch_data_storage
        )
        return oidc_login.enable_check_cookies().redirect(target_link_uri)

    @app.route("/launch/", methods=["POST"])
    def launch():
        tool_conf = ToolConfJsonFile(config_path)
        flask_request = FlaskRequest()
        launch_data_storage = FlaskCacheDataStorage(cache)
        message_launch = FlaskMessageLaunch(
            flask_request, tool_conf, launch_data_storage=launch_data_storage
        )
        message_launch.set_public_key_caching(launch_data_storage, cache_lifetime=7200)
        data = message_launch.get_launch_data()
        context = data.get("https://purl.imsglobal.org/spec/lti/claim/context", {})
        return render_template(
            "launch.html",
            name=data.get("name", ""),
            launch_id=message_launch.get_launch_id(),
            course=context.get("title", ""),
            deep_link=message_launch.is_deep_link_launch(),
        )

    @app.route("/jwks/", methods=["GET"])
    def jwks():
        return ToolConfJsonFile(config_path).get_jwks()

    return app
