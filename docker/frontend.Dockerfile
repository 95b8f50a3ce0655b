# Frontend: nginx serving frontend/public/, /api/* proxied to the gateway, /auth/* to devauth.
#
# Baked into an image rather than bind-mounted, so `docker compose up --build` does not depend on
# host paths (a missing bind-mount source silently becomes an empty directory).
# Build context: the repository root (see docker-compose.yml).
FROM nginx:1.27-alpine

# The official image renders /etc/nginx/templates/*.template into /etc/nginx/conf.d/ with envsubst
# at start-up. Naming it default.conf.template replaces the stock port-80 default server.
COPY frontend/nginx.conf /etc/nginx/templates/default.conf.template
COPY frontend/public/ /usr/share/nginx/html/

# Substitute only our five variables (like dev/stack.sh's `envsubst '${FRONTEND_PORT} ...'`),
# never an environment variable that happens to share a name with an nginx $variable.
# (No `$` anchor in the regex: it would have to survive Dockerfile and shell quoting.)
# AUTH: jwt proxies /auth/ to DEVAUTH_UPSTREAM (the dev sign-in); off answers it 404.
ENV NGINX_ENVSUBST_FILTER="^(FRONTEND_PORT|FRONTEND_ROOT|GATEWAY_UPSTREAM|DEVAUTH_UPSTREAM|AUTH)" \
    FRONTEND_PORT=8083 \
    FRONTEND_ROOT=/usr/share/nginx/html \
    GATEWAY_UPSTREAM=http://gateway:8080 \
    DEVAUTH_UPSTREAM=http://devauth:8084 \
    AUTH=jwt

EXPOSE 8083
